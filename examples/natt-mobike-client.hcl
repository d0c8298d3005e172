# A laptop behind NAT that roams between networks: NAT-T switches IKE and ESP
# to UDP 4500, MOBIKE moves the SAs when the address changes, DPD notices a
# dead path.
connection "office" {
  remote_addrs = ["203.0.113.1"]
  mobike       = true
  encap        = true                  # always UDP-encapsulate (strict firewalls)
  dpd_delay    = "30s"
  dpd_action   = "restart"
  vips         = ["0.0.0.0"]           # ask the gateway for an inner address (and DNS servers)

  local {
    auth   = "eap-mschapv2"
    id     = "alice@example.com"
    eap_id = "alice"
    psk    = "file:/etc/veil/alice.password"
  }
  remote {
    auth = "pubkey"
    id   = "vpn.example.com"
    cacerts = ["/etc/veil/ca.pem"]
  }

  child "office" {
    mode         = "tunnel"
    remote_ts    = ["10.10.0.0/16"]
    start_action = "start"
  }
}
