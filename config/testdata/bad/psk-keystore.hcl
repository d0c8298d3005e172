# A psk may be in a keystore plugin, but only one a plugin "keystore"
# block configures (here: none for "vault").
connection "lab" {
  remote_addrs = ["192.0.2.2"]
  local {
    auth = "psk"
    psk  = "vault:kv/lab#psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/lab.psk"
  }
}
