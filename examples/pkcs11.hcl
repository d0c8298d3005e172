# Keys on a PKCS#11 token (an HSM, or SoftHSM2 in a lab). The key reference
# is an RFC 7512 URI; the PIN comes from a file (mode 0600), never from this
# config. The private key never leaves the token. See
# plugins/keystore/pkcs11/README.md.
plugin "keystore" "pkcs11" {
  config {
    module   = "/usr/lib/softhsm/libsofthsm2.so"
    pin_file = "/etc/veil/token.pin"
    token    = "veil"
  }
}

connection "hsm-host" {
  local_addrs  = ["10.2.0.1"]
  remote_addrs = ["10.2.0.2"]
  local {
    auth        = "pubkey"
    id          = "hsm-host.example.com"
    certificate = "/etc/veil/hsm-host.pem"
    key         = "pkcs11:token=veil;object=hsm-host;type=private"
  }
  remote {
    auth    = "pubkey"
    id      = "peer.example.com"
    cacerts = ["/etc/veil/ca.pem"]
  }
  child "all" {}
}
