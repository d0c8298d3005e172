package dataplane

import "github.com/veil-ipsec/veil/sdk/base"

// PluginName is the name under which the dataplane service is dispensed.
const PluginName = base.KindDataplane

// ProtocolVersion of the dataplane service.
const ProtocolVersion = base.ProtocolVersion

// EventBuffer is the size of the host's event channel.
const EventBuffer = 256
