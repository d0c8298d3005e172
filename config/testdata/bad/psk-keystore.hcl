plugin "keystore" "vault" {
  config {
    address = "https://vault.example:8200"
  }
}

connection "lab" {
  remote_addrs = ["192.0.2.2"]
  local {
    auth = "psk"
    psk  = "vault:kv/lab"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/lab.psk"
  }
}
