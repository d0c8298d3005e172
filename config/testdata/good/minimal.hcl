connection "lab" {
  remote_addrs = ["192.0.2.2"]
  local {
    auth = "psk"
    psk  = "file:/etc/veil/lab.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/lab.psk"
  }
  child "all" {}
}
