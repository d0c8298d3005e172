daemon {
  log_level = "debug"
}

# Copied from 10-db.hcl and not renamed.
connection "db" {
  remote_addrs = ["10.0.0.9"]
  local {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
}
