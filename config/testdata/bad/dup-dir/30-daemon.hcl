daemon {
  log_level = "info"
}
