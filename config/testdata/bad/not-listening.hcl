daemon {
  listen    = ["127.0.0.1"]
  ike_port  = 5500
  natt_port = 5501
}

connection "a" {
  local_addrs  = ["127.0.0.1", "127.0.0.2", "::1"]
  remote_addrs = ["127.0.0.3"]
  local_port   = 500
  local {
    auth = "psk"
    psk  = "file:/etc/veil/a.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/a.psk"
  }
}
