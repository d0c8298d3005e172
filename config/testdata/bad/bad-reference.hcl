connection "db" {
  remote_addrs = ["10.0.0.2"]
  local {
    auth        = "pubkey"
    certificate = "/etc/veil/db1.pem"
    key         = "/etc/veil/db1.key"
  }
  remote {
    auth = "pubkey"
  }
}

connection "svc" {
  remote_addrs = ["10.0.0.3"]
  local {
    auth = "pubkey"
    key  = "vault:transit/svc"
  }
  remote {
    auth = "pubkey"
  }
}

connection "hsm" {
  remote_addrs = ["10.0.0.4"]
  local {
    auth = "pubkey"
    key  = "pkcs11:token=veil;label=hsm"
  }
  remote {
    auth = "pubkey"
  }
}

plugin "keystore" "pkcs11" {}
