package auth

import "github.com/veil-ipsec/veil/sdk/base"

// PluginName is the name under which the auth service is dispensed.
const PluginName = base.KindAuth

// ProtocolVersion of the auth service (equal to base.ProtocolVersion; the
// services are versioned together).
const ProtocolVersion = base.ProtocolVersion

// Limits the host enforces on what an auth plugin returns.
const (
	MaxDataLen  = 64 << 10 // bytes of AUTH data
	MaxCerts    = 16
	MaxCertLen  = 64 << 10
	MaxErrorLen = 1024 // longer error texts are cut
)
