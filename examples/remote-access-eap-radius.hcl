# A remote-access gateway: clients (Windows, iOS, strongSwan, veil) log in with
# EAP-MSCHAPv2 checked by a RADIUS server, get an address from a pool and DNS
# servers, and reach the office network in tunnel mode.
plugin "auth" "eap" {
  config {
    radius_server = "127.0.0.1:1812"
    radius_secret = "file:/etc/veil/radius.secret"
  }
}

connection "roadwarriors" {
  local_addrs = ["203.0.113.1"]
  # no remote_addrs: any client may connect
  mobike        = true
  fragmentation = true
  dpd_delay     = "60s"
  dpd_action    = "clear"

  local {
    auth        = "pubkey"                 # the gateway proves itself with a certificate
    id          = "vpn.example.com"
    certificate = "/etc/veil/vpn.pem"
    key         = "file:/etc/veil/vpn.key"
  }
  remote {
    auth   = "eap-mschapv2"
    eap_id = "%any"
  }

  child "office" {
    mode      = "tunnel"
    local_ts  = ["10.10.0.0/16"]
    remote_ts = ["dynamic"]
    pools     = ["10.99.0.0/24"]       # one address per client, the same one when it comes back
    dns       = ["10.10.0.53"]
  }
}
