connection "db" {
  remote_addrs  = ["10.0.0.2"]
  ike_proposals = ["aes256gcm16-prfsha384-x448", "aes256gcm16-bogus-x25519"]
  local {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/db.psk"
  }
  child "all" {
    esp_proposals = ["chacha20poly1305-foo", "aes256gcm16-prfsha256"]
  }
}
