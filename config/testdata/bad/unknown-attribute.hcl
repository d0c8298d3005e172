connection "db" {
  remote_addrs = ["10.0.0.2"]
  mobik        = true
  local {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  remote {
    auth  = "psk"
    psk   = "file:/etc/veil/db.psk"
    idd   = "db2.example.com"
  }
}
