connection "db" {
  remote_addrs = ["10.0.0.2"]
  local {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  child "pg" {
    mode      = "tunnel"
    local_ts  = ["10.0.0.0/33", "10.0.0.1/32[tcp/99999]"]
    remote_ts = ["10.0.0.2/32[tcpp]"]
  }
}
