# The private key stays in HashiCorp Vault: veil asks Vault's transit engine to
# sign the IKE AUTH payload and never sees the key (plugins/keystore/vault).
plugin "keystore" "vault" {
  config {
    address = "https://vault.example.com:8200"
    ca_cert = "/etc/veil/vault-ca.pem"
    # AppRole: the role_id is not secret; the secret_id is in a file (mode 0600).
    approle {
      role_id        = "8f2c1b9e-6f1d-4c1e-9d0a-3b7f5e2a1c44"
      secret_id_file = "/etc/veil/vault-secret-id"
    }
  }
}

connection "svc" {
  local_addrs  = ["10.1.0.10"]
  remote_addrs = ["10.1.0.20"]
  local {
    auth        = "pubkey"
    id          = "svc-a.example.com"
    certificate = "/etc/veil/svc-a.pem"
    key         = "vault:transit/svc-a"    # transit key name
  }
  remote {
    auth    = "pubkey"
    id      = "svc-b.example.com"
    cacerts = ["/etc/veil/ca.pem"]
  }
  child "grpc" {
    local_ts  = ["10.1.0.10/32[tcp]"]
    remote_ts = ["10.1.0.20/32[tcp/8443]"]
  }
}
