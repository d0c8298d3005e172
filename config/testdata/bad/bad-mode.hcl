connection "db" {
  local_addrs  = ["10.0.0.1"]
  remote_addrs = ["10.0.0.2"]
  local {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  child "pg" {
    mode = "tunell"
  }
  child "net" {
    mode     = "transport"
    local_ts = ["10.0.0.0/24"]
  }
  child "other-host" {
    remote_ts = ["10.0.0.3/32[tcp/5432]"]
  }
}

connection "wide" {
  local_addrs  = ["10.1.0.1"]
  remote_addrs = ["10.1.0.2"]
  local {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  child "two" {
    local_ts  = ["10.1.0.1/32[tcp/80]", "10.1.0.0/16"]
    remote_ts = ["dynamic[tcp]", "10.1.0.3"]
    pools     = ["10.99.0.0/24"]
  }
}
