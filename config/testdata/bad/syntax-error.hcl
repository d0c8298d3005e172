connection "db" {
  remote_addrs = ["10.0.0.2"
  local {
    auth = "psk"
  }
}
