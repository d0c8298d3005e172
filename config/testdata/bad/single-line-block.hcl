# Several attributes in a one-line block are accepted (Veil's own docs write
# them so); problems inside are still reported at their place on the line.
connection "db" {
  remote_addrs = ["10.0.0.2"]
  local  { auth = "pubkey"  idd = "db1.example.com"  key = "file:/etc/veil/db1.key" }
  remote { auth = "pubkey"  revocation = "maybe" }
  child "pg" { local_ts = ["10.0.0.1/32[tcp/5432]"]  mode = "tunnel" }
}
