// Package dataplane is what a dataplane plugin implements: installing Child
// SAs and their policies, reading counters and reporting events (acquires,
// expiries, address changes). The host calls it per SA, never per packet;
// the plugin owns the packet path.
//
// After a plugin restart the host configures it again and re-installs every
// SA and policy it installed and did not delete, so a plugin may keep its
// state in memory.
package dataplane

import (
	"context"
	"net/netip"
	"time"

	"github.com/veil-ipsec/veil/sdk/base"
)

// Mode is the IPsec mode of a Child SA.
type Mode uint8

const (
	Transport Mode = 1
	Tunnel    Mode = 2
)

// TrafficSelector is one address range with an IP protocol (0: any) and a
// port range (0-65535: any).
type TrafficSelector struct {
	Start, End         netip.Addr
	Protocol           uint8
	StartPort, EndPort uint16
}

// UDPEncap is RFC 3948 UDP encapsulation of ESP.
type UDPEncap struct {
	SrcPort, DstPort uint16
}

// Lifetime limits an SA; zero means no limit.
type Lifetime struct {
	Time    time.Duration
	Bytes   uint64
	Packets uint64
}

// ChildSA is one direction of an ESP SA. Encryption is "aes-gcm-16" or
// "chacha20-poly1305" (keys include the 4-byte salt) or "aes-cbc" with
// Integrity "hmac-sha2-256-128" / "hmac-sha2-384-192" / "hmac-sha2-512-256".
type ChildSA struct {
	ReqID        uint32
	SPI          uint32
	Inbound      bool
	Src, Dst     netip.Addr
	Mode         Mode
	Encryption   string
	EncKey       []byte
	Integrity    string
	IntegKey     []byte
	ESN          bool
	ReplayWindow uint32
	Encap        *UDPEncap
	LocalTS      []TrafficSelector
	RemoteTS     []TrafficSelector
	Soft, Hard   Lifetime
	Mark, IfID   uint32
	Offload      string // "", "off", "preferred", "required"
}

// SAKey identifies an installed SA.
type SAKey struct {
	Dst netip.Addr
	SPI uint32
}

// Direction of a policy.
type Direction uint8

const (
	In  Direction = 1
	Out Direction = 2
	Fwd Direction = 3
)

// PolicyAction is what matching traffic gets.
type PolicyAction uint8

const (
	Protect PolicyAction = 1
	Trap    PolicyAction = 2
	Bypass  PolicyAction = 3
	Block   PolicyAction = 4
)

// Policy selects traffic for a Child SA.
type Policy struct {
	ReqID            uint32
	Dir              Direction
	Action           PolicyAction
	Local, Remote    TrafficSelector
	Priority         uint32
	Mode             Mode
	TmplSrc, TmplDst netip.Addr
	Mark, IfID       uint32
}

// Counters of one SA.
type Counters struct {
	Bytes, Packets uint64
	LastUse        time.Time
	ReplayDrops    uint64
	AuthFailures   uint64
}

// EventKind is what the dataplane reports.
type EventKind uint8

const (
	Acquire       EventKind = 1 // traffic hit a Trap policy (Policy set)
	SoftExpire    EventKind = 2 // rekey now (SA set)
	HardExpire    EventKind = 3 // SA is gone (SA set)
	AddressChange EventKind = 4 // Addr added (AddrUp) or removed
	NATMapping    EventKind = 5 // SA's peer port changed to NewPort
	SeqExhausted  EventKind = 6 // rekey: sequence numbers nearly used up
)

// Event from the dataplane.
type Event struct {
	Kind    EventKind
	ReqID   uint32
	SA      SAKey
	Policy  *Policy
	Addr    netip.Addr
	AddrUp  bool
	NewPort uint16
}

// Dataplane is a dataplane plugin. InstallSA and InstallPolicy must be
// idempotent: the host re-installs everything after a restart.
type Dataplane interface {
	base.Plugin
	AllocateSPI(ctx context.Context, src, dst netip.Addr) (uint32, error)
	InstallSA(ctx context.Context, sa *ChildSA) error
	// DeleteSA removes an SA, or ends the reservation of an SPI that
	// AllocateSPI returned and no SA took (see SPIHoldTime).
	DeleteSA(ctx context.Context, key SAKey) error
	InstallPolicy(ctx context.Context, p *Policy) error
	DeletePolicy(ctx context.Context, p *Policy) error
	// Counters returns one entry per key, in order.
	Counters(ctx context.Context, keys []SAKey) ([]Counters, error)
	// Events delivers events until ctx ends; the channel is then closed.
	Events(ctx context.Context) (<-chan Event, error)
}

// ChildInstaller may be implemented by a Dataplane that can install a
// Child SA's SAs and policies in one step (one netlink batch, one table
// swap). InstallChild installs the SAs, then the policies, each list in
// order; it installs all or, on an error, none. Without it the SDK calls
// InstallSA and InstallPolicy in that order and on a failure deletes what
// it had installed.
type ChildInstaller interface {
	InstallChild(ctx context.Context, sas []*ChildSA, policies []*Policy) error
}
