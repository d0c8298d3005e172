package keystore

import "github.com/veil-ipsec/veil/sdk/base"

// PluginName is the name under which the keystore service is dispensed.
const PluginName = base.KindKeystore

// ProtocolVersion of the keystore service.
const ProtocolVersion = base.ProtocolVersion

// Limits the host enforces on what a keystore plugin returns.
const (
	MaxSecretLen    = 8 << 10
	MaxPublicLen    = 16 << 10
	MaxSignatureLen = 8 << 10
	MaxErrorLen     = 1024
)
