connection "db" {
  remote_addrs = ["10.0.0.2"]
  local {
    auth        = "pubkey"
    id          = "db1.example.com"
    certificate = "/etc/veil/db1.pem"
  }
  remote {
    auth = "psk"
    id   = "db2.example.com"
  }
}
