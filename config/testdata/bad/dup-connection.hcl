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
}

connection "db" {
  remote_addrs = ["10.0.0.3"]
  local {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
}

plugin "dataplane" "userspace" {}
plugin "dataplane" "userspace" {}
