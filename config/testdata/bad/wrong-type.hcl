daemon {
  ike_port = "five hundred"
}

connection "db" {
  local_addrs  = "10.0.0.1"
  remote_addrs = ["10.0.0.2"]
  mobike       = "yes"
  keyingtries  = 1.5
  local {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
}
