daemon {
  control_socket   = "/tmp/veil-a/veil.sock"
  control_group    = "veil"
  listen           = ["127.0.0.1", "::1"]
  ike_port         = 5500
  natt_port        = 5501
  log_level        = "warn"
  log_levels       = { ike = "debug", dataplane = "error" }
  log_format       = "json"
  cookie_threshold = 0
}

plugin "keystore" "pkcs11" {
  path = "/usr/lib/veil/plugins/veil-keystore-pkcs11"
  config {
    module = "/usr/lib/softhsm/libsofthsm2.so"
  }
}

connection "gw" {
  version          = 2
  local_addrs      = ["127.0.0.1"]
  remote_addrs     = ["127.0.0.2"]
  local_port       = 5500
  remote_port      = 5600
  ike_proposals    = ["chacha20poly1305-prfsha256-x25519", "aes128-sha256-prfsha256-ecp256"]
  proposals_prefer = "initiator"
  rekey_time       = "1d"
  over_time        = "2h"
  rand_time        = "30m"
  reauth_time      = "1w"
  dpd_delay        = "10s"
  dpd_timeout      = "1m"
  dpd_action       = "restart"
  mobike           = true
  fragmentation    = false
  encap            = true
  send_cert        = "always"
  keyingtries      = 0

  local {
    auth     = "eap-tls"
    id       = "client@example.com"
    eap_id   = "client"
    certificate = "pkcs11:token=veil;object=client"
    key      = "pkcs11:token=veil;object=client;type=private"
  }
  remote {
    auth       = "pubkey"
    id         = "gw.example.com"
    cacerts    = ["/etc/veil/ca.pem", "/etc/veil/ca2.pem"]
    revocation = "require"
  }
  child "net" {
    mode          = "tunnel"
    esp_proposals = ["aes256-sha512-esn", "aes256gcm16-x25519"]
    local_ts      = ["dynamic", "2001:db8:1::/48"]
    remote_ts     = ["10.0.0.0/8", "10.20.0.1-10.20.0.9[udp/1000-2000]"]
    start_action  = "trap"
    close_action  = "start"
    life_time     = "2h"
    rekey_bytes   = "1G"
    life_packets  = 5000000
    rekey_packets = "1M"
    replay_window = 1024
    dpd_action    = "trap"
    offload       = "preferred"
    mark          = "0x2a"
    if_id         = 7
    pools         = ["10.99.0.7/24"]
  }
}
