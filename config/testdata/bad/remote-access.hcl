# A PPK needs its identity and its key; a literal PPK is refused like a PSK;
# DNS servers are handed out only with pool addresses.
connection "vpn" {
  local_addrs = ["192.0.2.1"]
  ppk_id      = "ppk-2026"
  local {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  child "office" {
    mode      = "tunnel"
    local_ts  = ["10.10.0.0/16"]
    remote_ts = ["dynamic"]
    dns       = ["10.10.0.53"]
  }
}
connection "client" {
  remote_addrs = ["192.0.2.1"]
  vips         = ["0.0.0.0", "not-an-address"]
  ppk_id       = "ppk-2026"
  ppk          = "s3cr3t-ppk-value"
  local {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  child "office" {
    mode      = "tunnel"
    remote_ts = ["10.10.0.0/16"]
  }
}
