package dataplane

import (
	"time"

	"github.com/veil-ipsec/veil/sdk/base"
)

// PluginName is the name under which the dataplane service is dispensed.
const PluginName = base.KindDataplane

// ProtocolVersion of the dataplane service this SDK speaks. Version 2 adds
// one multiplexed stream for a handshake's calls (AllocateSPI and
// InstallChild: a Child SA's SAs and policies at once); version 1 makes
// each of them a unary call. A plugin built with this SDK serves both, and
// the host picks the highest both sides speak (go-plugin VersionedPlugins).
const ProtocolVersion = 2

// SPIHoldTime: from protocol version 2 on, the host allocates SPIs ahead.
// An SPI that AllocateSPI(src, dst) returned must stay usable for an
// inbound SA to dst from any source for at least this long (the kernel's
// larval SAs live 30 s). The host gives back the ones it did not use with
// DeleteSA.
const SPIHoldTime = 30 * time.Second

// ProtocolVersions are every version this SDK serves and hosts accept.
var ProtocolVersions = []int{1, 2}

// EventBuffer is the size of the host's event channel.
const EventBuffer = 256

// MaxErrorLen bounds a plugin's error text as the host reports it.
const MaxErrorLen = 1024
