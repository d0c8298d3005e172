connection "db" {
  remote_addrs = ["10.0.0.2"]
  local {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  local {
    auth = "psk"
    psk  = "file:/etc/veil/other.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  child "pg" {
    local_ts = ["10.0.0.1/32[tcp/5432]"]
  }
  child "pg" {
    local_ts = ["10.0.0.1/32[tcp/5433]"]
  }
}
