// Package ikesa is the IKE SA state machine without I/O: it consumes parsed
// IKE messages and timer ticks and emits datagrams, dataplane installs and
// events. Each exchange is a state struct with a straight-line driver in its
// own file (init.go, auth.go, child.go, info.go). core/engine owns sockets,
// SPI tables, timers and dispatch.
package ikesa

import (
	"io"
	"log/slog"
	"math"
	"net/netip"
	"time"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transform"
)

// AuthConfig is one side's authentication.
type AuthConfig struct {
	Method      string // "psk", "pubkey", ...: a key of Env.Auth
	ID          provider.Identity
	Secret      string // keystore reference of the PSK
	Key         string // keystore reference of the private key
	Certificate string
	// CertReq, on the remote side, is the Certification Authority field of
	// the CERTREQ we send (RFC 7296 §3.7: SHA-1 hashes of the trusted CAs'
	// public keys), so a peer with several certificates picks one we trust.
	CertReq []byte
}

// Connection is one configured peer.
type Connection struct {
	Name                  string
	LocalAddrs            []netip.Addr
	RemoteAddrs           []netip.Addr
	LocalPort, RemotePort uint16
	IKEProposals          []transform.Proposal
	PreferOurs            bool
	Local, Remote         AuthConfig
	RekeyTime, LifeTime   time.Duration
	ReauthTime            time.Duration // 0: never (reauth.go)
	DPDDelay, DPDTimeout  time.Duration
	DPDAction             string // "clear" (default), "restart", "trap"
	Mobike, Fragmentation bool
	// ForceEncap pretends a NAT is in front of us so that ESP is always
	// UDP-encapsulated (RFC 3948), for strict firewalls and the userspace
	// dataplane's fast path.
	ForceEncap bool
	// VIPs are the virtual IPs we ask the peer for (0.0.0.0 or ::: any).
	VIPs []netip.Addr
	// PPK (RFC 8784): PPKID names the key to the peer, PPK is its keystore
	// reference; PPKRequired refuses to go without it.
	PPKID, PPK  string
	PPKRequired bool
	Children    []Child
}

// Child is one configured Child SA.
type Child struct {
	Name                     string
	Mode                     provider.Mode
	ESPProposals             []transform.Proposal
	LocalTS, RemoteTS        []provider.TrafficSelector
	StartAction              string // "none", "start", "trap"
	DPDAction                string // "": the connection's
	RekeyTime, LifeTime      time.Duration
	RekeyBytes, RekeyPackets uint64
	// LifeBytes, LifePackets: hard limits (0 with a soft one: soft + 10 %)
	LifeBytes, LifePackets uint64
	ReplayWindow           uint32
	// Pools lease virtual IPs to peers that ask (the remote "dynamic"
	// selector becomes the address); DNS servers go with them.
	Pools []netip.Prefix
	DNS   []netip.Addr
}

// Retransmit says how requests are resent: Timeout * Base^n before try n+1,
// Tries sends in all.
type Retransmit struct {
	Timeout time.Duration
	Base    float64
	Tries   int
}

// DefaultRetransmit is strongSwan's: 4 s x 1.8^n, 5 tries.
var DefaultRetransmit = Retransmit{Timeout: 4 * time.Second, Base: 1.8, Tries: 5}

func (r Retransmit) after(try int) time.Duration {
	return time.Duration(float64(r.Timeout) * math.Pow(r.Base, float64(try)))
}

// Env is what an SA needs from its surroundings.
type Env struct {
	Dataplane  provider.Dataplane
	KeyStore   provider.KeyStore
	Auth       map[string]provider.Authenticator
	Logger     *slog.Logger
	Now        func() time.Time
	Rand       io.Reader
	Retransmit Retransmit
	NATPort    uint16 // our NAT-T port, for floating (4500)
	// FragmentSize is the largest IKE datagram before RFC 7383
	// fragmentation (0: DefaultFragmentSize).
	FragmentSize int
	// NextReqID hands out dataplane ReqIDs.
	NextReqID func() uint32
	Stats     *Stats
	// Candidates lists the connections a responder may use for a peer
	// address, best first; IKE_AUTH picks among them by identity.
	Candidates func(remote netip.Addr) []*Connection
	// Offload runs work that may wait on a plugin's backend (an EAP step
	// relayed to RADIUS) without holding the caller's lock, then apply
	// serialised with the SA's other work. Nil runs both inline.
	Offload func(sa *SA, work, apply func())
	// ReleaseTrap, if set, removes the Trap policies of a configured child
	// just before the child installs its own for the same selectors.
	ReleaseTrap func(conn *Connection, child string)
	// Pools leases virtual IPs (shared by every SA of the engine).
	Pools *AddressPools
	// VirtualIPs, if set, puts the virtual IPs a peer assigned to us on the
	// host (add) and takes them off when their IKE SA is gone; it is
	// called before the first child installs, so routes can name them.
	VirtualIPs func(add bool, addrs []netip.Addr)
}

func (env *Env) offload(sa *SA, work, apply func()) {
	if env.Offload == nil {
		work()
		apply()
		return
	}
	env.Offload(sa, work, apply)
}
