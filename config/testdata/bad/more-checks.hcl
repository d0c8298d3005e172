# The remaining checks, one each.
daemon {
  control_socket = "veil.sock"
  ike_port       = 4500
  log_levels     = "debug"
}

plugin "dataplane" "userspace" {}
plugin "dataplane" "xfrm" {}
plugin "keystore" "my vault" {
  path = "bin/keystore"
  config {
  }
  config {
  }
}

connection "bad name!" {
  local_addrs  = ["10.0.0.1"]
  remote_addrs = ["2001:db8::2"]
  life_time    = "4h"
  over_time    = "10m"
  dpd_action   = "clear"
  local {
    auth    = "psk"
    psk     = "file:etc/veil/a.psk"
    cacerts = ["ca.pem"]
  }
  remote {
    auth        = "pubkey"
    certificate = "peer.pem"
  }
  child "x" {
    rekey_bytes   = "1G"
    life_bytes    = "1M"
    rekey_packets = 1000
    life_packets  = 10
    rand_time     = "2h"
    rekey_time    = "1h"
    life_time     = "2h"
    pools         = ["10.99.0.0/33"]
    mode          = "tunnel"
  }
  child "y" {
    local_ts = []
  }
}
