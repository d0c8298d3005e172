# The private key stays in HashiCorp Vault: veil asks Vault's transit engine to
# sign the IKE AUTH payload and never sees the key.
plugin "keystore" "vault" {
  config {
    address    = "https://vault.example.com:8200"
    # AppRole credentials are themselves references to files.
    role_id    = "file:/etc/veil/vault-role-id"
    secret_id  = "file:/etc/veil/vault-secret-id"
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
