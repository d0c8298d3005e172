# A PSK lab: two hosts, one transport-mode child protecting everything between
# them. Good for a first test; use certificates in production.
daemon {
  control_socket = "/run/veil/veil.sock"
  listen         = ["0.0.0.0", "::"]
  log_level      = "info"
}

# The userspace dataplane runs on any kernel (ESP in Go over a TUN device).
# Leave this block out to use the Linux kernel's XFRM (the default).
plugin "dataplane" "userspace" {}

connection "lab" {
  local_addrs  = ["192.0.2.1"]
  remote_addrs = ["192.0.2.2"]

  # The secret is a keystore reference, never a literal: file:/path holds the
  # key (at least 16 bytes, 32 or more recommended; `head -c 32 /dev/urandom | base64`).
  local  {
    auth = "psk"
    id   = "a.lab.example"
    psk  = "file:/etc/veil/lab.psk"
  }
  remote {
    auth = "psk"
    id   = "b.lab.example"
    psk  = "file:/etc/veil/lab.psk"
  }

  child "all" {
    mode         = "transport"
    start_action = "start"    # bring it up when veild starts
  }
}
