# Every problem in one run, not one per restart.
daemon {
  log_level  = "verbose"
  log_format = "yaml"
  log_levels = { ike = "debug", child = "loud" }
}

plugin "datapath" "userspace" {}

connection "web" {
  local_addrs   = ["10.0.0.1"]
  remote_addrs  = ["10.0.0.2"]
  ike_proposals = ["aes256gcm16-prfsha384-x25519", "aes256-sha1-modp2048"]
  dpd_action    = "reboot"
  local {
    auth = "password"
  }
  child "https" {
    mode         = "transport"
    local_ts     = ["10.0.0.1/32[tcp/443"]
    start_action = "always"
    offload      = "yes"
    mark         = "0xzz"
  }
}
