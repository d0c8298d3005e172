# Host-to-host with X.509 certificates: a database primary (db1) protecting
# PostgreSQL replication to its standby (db2). Only TCP 5432 is protected;
# other traffic between the hosts is untouched.
daemon {
  control_socket = "/run/veil/veil.sock"
  listen         = ["10.0.0.1"]
  metrics_listen = "127.0.0.1:9750"   # Prometheus /metrics
}

connection "db-replication" {
  local_addrs   = ["10.0.0.1"]
  remote_addrs  = ["10.0.0.2"]
  # Post-quantum hybrid: X25519 plus ML-KEM-768 in an IKE_INTERMEDIATE exchange.
  ike_proposals = ["aes256gcm16-prfsha384-x25519-ke1_mlkem768"]
  rekey_time    = "4h"
  dpd_delay     = "30s"

  local {
    auth        = "pubkey"
    id          = "db1.example.com"          # must match a SAN of the certificate
    certificate = "/etc/veil/db1.pem"
    key         = "file:/etc/veil/db1.key"   # or vault:..., pkcs11:...
  }
  remote {
    auth       = "pubkey"
    id         = "db2.example.com"
    cacerts    = ["/etc/veil/ca.pem"]
    revocation = "prefer"                    # off | prefer | require (CRL and OCSP)
  }

  child "postgres" {
    mode          = "transport"
    esp_proposals = ["aes256gcm16", "chacha20poly1305"]
    local_ts      = ["10.0.0.1/32[tcp/5432]"]
    remote_ts     = ["10.0.0.2/32[tcp]"]
    start_action  = "start"
  }
}
