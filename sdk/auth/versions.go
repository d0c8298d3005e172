package auth

import (
	"time"

	"github.com/veil-ipsec/veil/sdk/base"
)

// PluginName is the name under which the auth service is dispensed.
const PluginName = base.KindAuth

// ProtocolVersion of the auth service (equal to base.ProtocolVersion; the
// services are versioned together). EAP (StartEAP, Step, Close) joined
// version 1 as new operations on the existing stream rather than as a new
// version: old hosts never ask for them and old plugins answer "unknown
// auth operation", which the client reports as ErrNoEAP, so nothing that
// works today stops working.
const ProtocolVersion = base.ProtocolVersion

// Limits the host enforces on what an auth plugin returns.
const (
	MaxDataLen  = 64 << 10 // bytes of AUTH data
	MaxCerts    = 16
	MaxCertLen  = 64 << 10
	MaxErrorLen = 1024 // longer error texts are cut
)

// EAP limits. A plugin keeps at most MaxEAPSessions conversations and
// closes one that has seen no call for EAPIdleTimeout (a host that died or
// lost a session mid-conversation cannot exhaust the plugin's memory); the
// host rejects steps beyond the other limits.
const (
	MaxEAPSessions    = 4096
	EAPIdleTimeout    = 2 * time.Minute
	MaxEAPMessageLen  = 65535 // an EAP packet's Length field is 16 bits
	MaxMSKLen         = 1024
	MaxEAPIdentityLen = 1024
	// EAPCloseTimeout bounds the close call a session's Close sends (Close
	// itself returns at once).
	EAPCloseTimeout = time.Second
)
