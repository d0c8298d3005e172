daemon {
  listen         = ["0.0.0.0", "localhost"]
  metrics_listen = ":9750"
}

connection "db" {
  local_addrs  = ["10.0.0.0/24"]
  remote_addrs = ["db2.example.com", "2001:db8::2"]
  version      = 1
  local {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
}

connection "anywhere" {
  local {
    auth = "psk"
    psk  = "file:/etc/veil/any.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/any.psk"
  }
  child "all" {
    start_action = "start"
  }
}

connection "elsewhere" {
  local_addrs  = ["192.0.2.1", "0.0.0.0"]
  remote_addrs = ["192.0.2.2"]
  local_port   = 4501
  local {
    auth = "psk"
    psk  = "file:/etc/veil/any.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/any.psk"
  }
}
