// Package pluginpb is the generated wire format of Veil's plugin protocol
// (version 1). It is not the plugin author's API: use sdk/auth, sdk/keystore
// and sdk/dataplane. Regenerate with `make proto` (pinned generators).
package pluginpb
