# Quantum-safe today, two ways at once: a hybrid key exchange (X25519 plus
# ML-KEM-768, RFC 9370) and a post-quantum preshared key (PPK, RFC 8784)
# mixed into the IKE keys. Either one alone keeps recorded traffic safe from
# a future quantum computer; together they hedge against a flaw in ML-KEM.
connection "replica" {
  local_addrs  = ["192.0.2.10"]
  remote_addrs = ["192.0.2.20"]
  ike_proposals = ["aes256gcm16-prfsha384-x25519-ke1_mlkem768"]

  # The PPK: at least 32 random bytes in a root-only file, the same on both
  # hosts (`head -c 32 /dev/urandom > /etc/veil/ppk-2026.key; chmod 600 ...`),
  # known to both by its identity. With ppk_required the IKE SA fails rather
  # than fall back to keys without it.
  ppk_id       = "ppk-2026"
  ppk          = "file:/etc/veil/ppk-2026.key"
  ppk_required = true

  local {
    auth        = "pubkey"
    id          = "db1.example.com"
    certificate = "/etc/veil/db1.pem"
    key         = "file:/etc/veil/db1.key"
  }
  remote {
    auth    = "pubkey"
    id      = "db2.example.com"
    cacerts = ["/etc/veil/ca.pem"]
  }

  child "replication" {
    mode          = "transport"
    esp_proposals = ["aes256gcm16-x25519-ke1_mlkem768"]   # hybrid PFS on every rekey
    local_ts      = ["dynamic[tcp/5432]"]
    remote_ts     = ["dynamic[tcp]"]
    start_action  = "start"
  }
}
