connection "legacy" {
  remote_addrs  = ["10.0.0.2"]
  ike_proposals = ["aes128-sha1-modp1024"]
  local {
    auth = "psk"
    psk  = "file:/etc/veil/legacy.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/legacy.psk"
  }
  child "all" {
    esp_proposals = ["3des-md5"]
  }
}
