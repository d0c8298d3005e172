# The configuration shape agreed in the project's contract, verbatim
# (including its compact one-line blocks).
daemon {
  control_socket = "/run/veil/veil.sock"   # unix socket, mode 0600 unless control_group
  listen         = ["0.0.0.0", "::"]       # IKE sockets; ports 500 and 4500 by default
  log_level      = "info"                  # per subsystem overrides allowed
  metrics_listen = "127.0.0.1:9750"        # Prometheus /metrics; off when absent
}
plugin "dataplane" "userspace" {}          # kind, name; "xfrm" is the Linux default
plugin "keystore" "vault" { config { address = "https://vault:8200" } }
connection "db-replication" {
  local_addrs   = ["10.0.0.1"]
  remote_addrs  = ["10.0.0.2"]
  ike_proposals = ["aes256gcm16-prfsha384-x25519-ke1_mlkem768"]
  rekey_time    = "4h"
  dpd_delay     = "30s"
  local  { auth = "pubkey"  id = "db1.example.com"  certificate = "/etc/veil/db1.pem"  key = "vault:transit/db1" }
  remote { auth = "pubkey"  id = "db2.example.com" }
  child "postgres" {
    mode          = "transport"
    esp_proposals = ["aes256gcm16", "chacha20poly1305"]
    local_ts      = ["10.0.0.1/32[tcp/5432]"]
    remote_ts     = ["10.0.0.2/32[tcp]"]
    start_action  = "start"                # none | trap | start
  }
}
