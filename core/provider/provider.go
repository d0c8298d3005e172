// Package provider is the contract between the IKE engine and the parts it
// delegates to: authentication, key storage and the dataplane. The engine sees
// only these Go interfaces; core/pluginhost adapts out-of-process plugins (sdk/)
// to them, and tests use in-memory implementations. Nothing here imports gRPC.
//
// The engine calls providers per SA, never per packet.
package provider

import (
	"context"
	"crypto"
	"net/netip"
	"time"
)

// Role is the side of an exchange.
type Role uint8

const (
	Initiator Role = iota + 1
	Responder
)

// Identity is an IKE identification (RFC 7296 §3.5): Type is the ID type
// (1 IPv4, 2 FQDN, 3 RFC822, 5 IPv6, 9 DER_ASN1_DN, 11 KEY_ID) and Data its
// payload bytes.
type Identity struct {
	Type uint8
	Data []byte
}

// AuthRequest carries what an Authenticator needs for one side's AUTH
// payload. SignedOctets are the exact octets RFC 7296 §2.15 says AUTH covers:
// the sender's first message as received or sent (never re-marshalled), the
// peer's nonce, and prf(SK_px, ID') already computed by the engine.
type AuthRequest struct {
	Connection   string
	Role         Role // the role of the side whose AUTH is made or checked
	LocalID      Identity
	RemoteID     Identity
	PRF          uint16 // negotiated PRF transform ID (RFC 7296 §3.3.2)
	SignedOctets []byte
	// Peer's AUTH, for Verify.
	Method uint8
	Data   []byte
	Certs  [][]byte // DER certificates from CERT payloads, end entity first
	// SignatureHashes are the hash algorithms the peer announced in
	// SIGNATURE_HASH_ALGORITHMS (RFC 7427).
	SignatureHashes []uint16
}

// AuthResult is a locally made AUTH payload plus the certificates to send.
type AuthResult struct {
	Method uint8
	Data   []byte
	Certs  [][]byte
}

// Authenticator makes and checks AUTH payloads for one auth method
// ("psk", "pubkey", "eap-..."). Errors from Verify are plain-language reasons
// that the daemon shows to operators; they never contain key material.
type Authenticator interface {
	Make(ctx context.Context, req *AuthRequest) (*AuthResult, error)
	Verify(ctx context.Context, req *AuthRequest) error
}

// KeyStore resolves key references from the configuration ("file:/path",
// "vault:transit/name", "pkcs11:...").
type KeyStore interface {
	// Secret returns a shared secret (PSK, EAP password). The caller zeroes it.
	Secret(ctx context.Context, ref string) ([]byte, error)
	// Signer returns a signer whose private key stays inside the store.
	Signer(ctx context.Context, ref string) (crypto.Signer, error)
}

// Mode is the IPsec mode of a Child SA.
type Mode uint8

const (
	Transport Mode = iota + 1
	Tunnel
)

func (m Mode) String() string {
	switch m {
	case Transport:
		return "transport"
	case Tunnel:
		return "tunnel"
	}
	return "unknown"
}

// TrafficSelector is one address range with an IP protocol and port range
// (RFC 7296 §3.13.1). Protocol 0 means any; ports 0-65535 mean any.
type TrafficSelector struct {
	Start, End         netip.Addr
	Protocol           uint8
	StartPort, EndPort uint16
}

// UDPEncap describes RFC 3948 UDP encapsulation of ESP (NAT-T).
type UDPEncap struct {
	SrcPort, DstPort uint16
}

// Lifetime limits an SA by time, bytes and packets; zero means no limit.
type Lifetime struct {
	Time    time.Duration
	Bytes   uint64
	Packets uint64
}

// ESPAlgorithm names: "aes-gcm-16" (key includes the 4-byte salt),
// "chacha20-poly1305" (key includes the 4-byte salt), "aes-cbc" with an
// integrity algorithm "hmac-sha2-256-128" / "-384-192" / "-512-256".
type ChildSA struct {
	ReqID        uint32 // ties SAs to their policies
	SPI          uint32
	Inbound      bool
	Src, Dst     netip.Addr
	Mode         Mode
	Encryption   string
	EncKey       []byte
	Integrity    string // empty for AEAD
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
	In Direction = iota + 1
	Out
	Fwd
)

// PolicyAction says what a matching packet gets.
type PolicyAction uint8

const (
	Protect PolicyAction = iota + 1 // use the SA with ReqID
	Trap                            // no SA yet: raise an Acquire event
	Bypass
	Block
)

// Policy selects traffic for a Child SA.
type Policy struct {
	ReqID    uint32
	Dir      Direction
	Action   PolicyAction
	Local    TrafficSelector
	Remote   TrafficSelector
	Priority uint32
	Mode     Mode
	// Tunnel endpoints (tunnel mode) or the SA's addresses (transport mode).
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

// EventKind is what the dataplane reports to the engine.
type EventKind uint8

const (
	Acquire       EventKind = iota + 1 // traffic hit a Trap policy
	SoftExpire                         // rekey now
	HardExpire                         // SA is gone
	AddressChange                      // local address added or removed (MOBIKE)
	NATMapping                         // peer's UDP encapsulation port changed
	SeqExhausted                       // outbound sequence numbers nearly exhausted: rekey
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

// Dataplane installs Child SAs and policies and reports events. After a
// dataplane restart the engine re-installs every SA and policy (Reconcile).
type Dataplane interface {
	AllocateSPI(ctx context.Context, src, dst netip.Addr) (uint32, error)
	InstallSA(ctx context.Context, sa *ChildSA) error
	DeleteSA(ctx context.Context, key SAKey) error
	InstallPolicy(ctx context.Context, p *Policy) error
	DeletePolicy(ctx context.Context, p *Policy) error
	Counters(ctx context.Context, keys []SAKey) ([]Counters, error)
	// Events delivers events until ctx ends.
	Events(ctx context.Context) (<-chan Event, error)
}
