connection "db" {
  remote_addrs = ["10.0.0.2"]
  rekey_time   = "4 hours"
  dpd_delay    = 30
  dpd_timeout  = "-5s"
  local {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  child "pg" {
    rekey_time  = "2h"
    life_time   = "1h"
    rekey_bytes = "1 gigabyte"
  }
}
