package ikesa

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transform"
)

// State of an IKE SA.
type State uint8

const (
	StateConnecting State = iota + 1 // IKE_SA_INIT / IKE_AUTH in progress
	StateEstablished
	StateRekeying
	StateDeleting
	StateDead
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "CONNECTING"
	case StateEstablished:
		return "ESTABLISHED"
	case StateRekeying:
		return "REKEYING"
	case StateDeleting:
		return "DELETING"
	case StateDead:
		return "DESTROYING"
	}
	return "UNKNOWN"
}

// EventKind says what happened to an SA.
type EventKind uint8

const (
	EventUp          EventKind = iota + 1 // IKE SA established
	EventDown                             // IKE SA gone
	EventFailed                           // establishment failed (Reason)
	EventChildUp                          // Child SA installed
	EventChildDown                        // Child SA removed
	EventChildFailed                      // Child SA could not be set up (Reason)
	EventRekeyed                          // IKE SA (Child == "") or Child SA rekeyed
	EventReauth                           // time to reauthenticate: the engine sets up a new IKE SA
)

func (k EventKind) String() string {
	return [...]string{"", "up", "down", "failed", "child-up", "child-down", "child-failed", "rekeyed", "reauth"}[k]
}

// Event is reported to the engine after each step.
type Event struct {
	Kind   EventKind
	Conn   string
	Child  string
	Reason string
	// Class is a short counter label for failures ("proposal", "auth",
	// "ts", "timeout", "mode", ...).
	Class string
}

// request is one outstanding or queued request of ours.
type request struct {
	exchange   ike.ExchangeType
	payloads   []ike.Payload
	onResponse func(ps []ike.Payload) error
	// onTimeout runs when retransmits are exhausted (nil: the SA dies).
	id        uint32
	datagrams [][]byte
	tries     int
	deadline  time.Time
}

// SA is one IKE SA.
type SA struct {
	env  *Env
	Conn *Connection
	log  *slog.Logger

	Initiator   bool
	SPIi, SPIr  uint64
	Local       netip.AddrPort
	Remote      netip.AddrPort
	State       State
	Suite       transform.Suite
	Established time.Time

	keys                *transform.IKEKeys
	out, in             ike.SKCipher // our sending / receiving cipher
	ni, nr              []byte
	initI               []byte // IKE_SA_INIT request as sent/received (RealMessage1)
	initR               []byte // IKE_SA_INIT response (RealMessage2)
	peerSigHashes       []uint16
	natLocal, natRemote bool
	peerFragmentation   bool

	// request window (size 1 each way)
	nextReqID   uint32
	inflight    *request
	queue       []*request
	nextPeerID  uint32 // the peer's next request ID
	lastRespID  uint32
	lastResp    [][]byte // cached response datagrams for lastRespID
	lastReqHash [32]byte // of the request lastResp answers
	lastRecv    time.Time

	dpdDue time.Time
	// IKE SA lifetime
	rekeyAt, expireAt time.Time
	reauthAt          time.Time // see reauth.go
	// rekeys: new SAs for the engine to index, the SA that replaces this
	// one, and the peer's rekey of this SA (collision detection)
	spawned      []*SA
	successor    *SA
	peerIKERekey *peerRekey
	// the responder's IKE rekey waiting for IKE_FOLLOWUP_KE exchanges
	pendingFollowup *followup
	// halfOpenUntil ends a responder's SA whose IKE_AUTH never came.
	halfOpenUntil time.Time

	Children []*ChildSA

	inter intermediate
	// MOBIKE: whether the peer supports it; addresses of the last request
	peerMobike       bool
	lastFrom, lastTo netip.AddrPort
	// RFC 7383 reassembly of the peer's requests and responses
	reasmReq, reasmResp *ike.Reassembler
	authMID             uint32 // message ID of the IKE_AUTH request
	lastPlain           []byte // IntAuth data of the last IKE_INTERMEDIATE response
	// in-progress exchange state
	initEx *initState
	authEx *authState
	eap    *eapState // EAP inside IKE_AUTH (eap.go)
	vip    vipState  // virtual IPs (cp.go)
	ppk    ppkState  // post-quantum preshared key (ppk.go)

	// outputs, drained by the engine
	outbox [][]byte
	events []Event
	// wantDelete asks the engine to forget this SA.
	dead      bool
	downClass string
	// LastFailure is the last plain-language failure reason.
	LastFailure string
}

// Dead reports whether the engine should drop the SA.
func (sa *SA) Dead() bool { return sa.dead }

// LocalSPI is the SPI the engine indexes this SA under.
func (sa *SA) LocalSPI() uint64 {
	if sa.Initiator {
		return sa.SPIi
	}
	return sa.SPIr
}

// TakeOutput returns datagrams to send to sa.Remote from sa.Local.
func (sa *SA) TakeOutput() [][]byte {
	o := sa.outbox
	sa.outbox = nil
	return o
}

// TakeEvents returns events since the last call.
func (sa *SA) TakeEvents() []Event {
	e := sa.events
	sa.events = nil
	return e
}

func (sa *SA) event(k EventKind, child, class, reason string) {
	sa.events = append(sa.events, Event{Kind: k, Conn: sa.Conn.Name, Child: child, Class: class, Reason: reason})
}

func (sa *SA) logger() *slog.Logger {
	return sa.log.With("spi_i", fmt.Sprintf("%016x", sa.SPIi), "spi_r", fmt.Sprintf("%016x", sa.SPIr))
}

func newSA(env *Env, conn *Connection, initiator bool, local, remote netip.AddrPort) *SA {
	sa := &SA{env: env, Conn: conn, Initiator: initiator, Local: local, Remote: remote, State: StateConnecting}
	sa.log = env.Logger.With("conn", conn.Name)
	sa.lastRecv = env.Now()
	return sa
}

func randSPI(env *Env) uint64 {
	var b [8]byte
	for {
		if _, err := env.randReader().Read(b[:]); err != nil {
			panic(err) // crypto/rand does not fail
		}
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

func (env *Env) randReader() interface{ Read([]byte) (int, error) } {
	if env.Rand != nil {
		return env.Rand
	}
	return rand.Reader
}

func (env *Env) nonce() []byte {
	b := make([]byte, 32)
	if _, err := env.randReader().Read(b); err != nil {
		panic(err)
	}
	return b
}

func (sa *SA) header(ex ike.ExchangeType, id uint32, response bool) ike.Header {
	h := ike.Header{SPIi: sa.SPIi, SPIr: sa.SPIr, Major: 2, Exchange: ex, MessageID: id}
	if sa.Initiator {
		h.Flags |= ike.FlagInitiator
	}
	if response {
		h.Flags |= ike.FlagResponse
	}
	return h
}

// queueRequest sends r now if the window is free, else after the
// outstanding one completes.
func (sa *SA) queueRequest(r *request) {
	if sa.inflight != nil {
		sa.queue = append(sa.queue, r)
		return
	}
	sa.sendRequest(r)
}

func (sa *SA) sendRequest(r *request) {
	r.id = sa.nextReqID
	sa.nextReqID++
	h := sa.header(r.exchange, r.id, false)
	b, err := sa.seal(h, r.payloads)
	if err != nil {
		sa.logger().Error("sealing request failed", "exchange", r.exchange, "err", err)
		return
	}
	r.datagrams = b
	r.tries = 1
	r.deadline = sa.env.Now().Add(sa.env.Retransmit.after(0))
	sa.inflight = r
	sa.outbox = append(sa.outbox, b...)
}

func (sa *SA) nextQueued() {
	if sa.inflight != nil || len(sa.queue) == 0 || sa.dead {
		return
	}
	r := sa.queue[0]
	sa.queue = sa.queue[1:]
	sa.sendRequest(r)
}

// respond seals and caches a response to the peer's request id.
func (sa *SA) respond(ex ike.ExchangeType, id uint32, ps []ike.Payload) {
	h := sa.header(ex, id, true)
	b, err := sa.seal(h, ps)
	if err != nil {
		sa.logger().Error("sealing response failed", "exchange", ex, "err", err)
		return
	}
	sa.lastRespID, sa.lastResp = id, b
	sa.outbox = append(sa.outbox, b...)
}

// NextDeadline is when OnTimer must run next (zero: never).
func (sa *SA) NextDeadline() time.Time {
	var t time.Time
	min := func(x time.Time) {
		if !x.IsZero() && (t.IsZero() || x.Before(t)) {
			t = x
		}
	}
	if sa.inflight != nil {
		min(sa.inflight.deadline)
	}
	if sa.initEx != nil && !sa.initEx.deadline.IsZero() {
		min(sa.initEx.deadline)
	}
	min(sa.dpdDue)
	min(sa.rekeyAt)
	min(sa.reauthAt)
	min(sa.expireAt)
	if sa.State == StateConnecting {
		min(sa.halfOpenUntil)
	}
	for _, c := range sa.Children {
		min(c.rekeyAt)
		min(c.expireAt)
	}
	return t
}

// OnTimer runs what is due at now: retransmits, DPD, rekeys, expiry.
func (sa *SA) OnTimer(now time.Time) {
	if sa.dead {
		return
	}
	if sa.initEx != nil && !sa.initEx.deadline.IsZero() && !now.Before(sa.initEx.deadline) {
		sa.initRetransmit(now)
	}
	if sa.State == StateConnecting && !sa.halfOpenUntil.IsZero() && !now.Before(sa.halfOpenUntil) {
		sa.fail("timeout", fmt.Sprintf("peer %s sent IKE_SA_INIT but no IKE_AUTH within %s", sa.Remote.Addr(), HalfOpenTimeout))
		return
	}
	if r := sa.inflight; r != nil && !now.Before(r.deadline) {
		if r.tries >= sa.env.Retransmit.Tries {
			sa.peerSilent(r.exchange, r.tries)
			return
		}
		r.deadline = now.Add(sa.env.Retransmit.after(r.tries))
		r.tries++
		sa.env.Stats.Retransmits++
		sa.logger().Debug("retransmit", "exchange", r.exchange, "msgid", r.id, "try", r.tries)
		sa.outbox = append(sa.outbox, r.datagrams...)
	}
	sa.dpdTimer(now)
	sa.reauthTimer(now)
	sa.childTimers(now)
}

func (sa *SA) peerSilent(ex ike.ExchangeType, tries int) {
	reason := fmt.Sprintf("peer %s did not answer %s after %d transmissions; check that UDP ports 500 and 4500 are open on both sides and whether a NAT drops the traffic", sa.Remote.Addr(), ex, tries)
	class := "timeout"
	if sa.State == StateConnecting {
		sa.fail(class, reason)
		return
	}
	sa.env.Stats.DPDTimeouts++
	sa.LastFailure = reason
	sa.downClass = class
	sa.logger().Info("peer silent", "reason", reason)
	sa.destroy(reason)
}

// fail ends an SA that never came up.
func (sa *SA) fail(class, reason string) {
	sa.LastFailure = reason
	sa.env.Stats.Handshakes[class]++
	sa.logger().Info("IKE SA failed", "class", class, "reason", reason)
	sa.event(EventFailed, "", class, reason)
	sa.destroy(reason)
}

// destroy removes the SA's children from the dataplane, zeroes keys and
// marks the SA dead.
func (sa *SA) destroy(reason string) {
	if sa.dead {
		return
	}
	handover := sa.successor != nil && !sa.successor.dead
	if handover {
		// A rekeyed IKE SA hands its children to its successor.
		sa.moveChildren(sa.successor)
		sa.successor.vip, sa.vip = sa.vip, vipState{}
	}
	sa.releaseVIPs()
	for _, c := range sa.Children {
		sa.removeChild(c, reason)
	}
	sa.Children = nil
	wasUp := sa.State != StateConnecting && !handover
	sa.State = StateDead
	sa.dead = true
	sa.inflight, sa.queue = nil, nil
	sa.initEx, sa.authEx = nil, nil
	if sa.eap != nil {
		sa.eap.close()
	}
	if sa.keys != nil {
		sa.ppkDrop()
		sa.keys.Zero()
		sa.keys = nil
	}
	if wasUp {
		sa.event(EventDown, "", sa.downClass, reason)
	}
}

// HandleMessage processes a message the engine routed to this SA.
// local and remote are the addresses it arrived on and from.
func (sa *SA) HandleMessage(m *ike.Message, local, remote netip.AddrPort) {
	if sa.dead {
		return
	}
	if m.Header.Exchange == ike.IKE_SA_INIT {
		sa.handleInitMessage(m)
		return
	}
	if sa.in == nil {
		sa.env.Stats.Drop("no-keys")
		return
	}
	if m.Header.IsResponse() {
		r := sa.inflight
		if r == nil || m.Header.MessageID != r.id {
			sa.env.Stats.Drop("unexpected-response")
			return
		}
		ps, data, complete := sa.decrypt(m, &sa.reasmResp)
		if !complete {
			return
		}
		sa.lastPlain = data
		sa.lastRecv = sa.env.Now()
		sa.followNAT(local, remote)
		sa.inflight = nil
		if err := r.onResponse(ps); err != nil {
			sa.logger().Info("exchange failed", "exchange", r.exchange, "err", err)
		}
		sa.nextQueued()
		return
	}
	id := m.Header.MessageID
	if frag, ok := lastPayload(m).(*ike.EncryptedFragment); ok && sa.lastResp != nil && id == sa.lastRespID {
		// RFC 7383 §2.6.1: answer a retransmitted fragmented request once,
		// on its first fragment.
		if frag.Number == 1 {
			sa.env.Stats.Drop("retransmitted-request")
			sa.outbox = append(sa.outbox, sa.lastResp...)
		}
		return
	}
	if sa.lastResp != nil && id == sa.lastRespID && sha256.Sum256(m.Raw) == sa.lastReqHash {
		// A retransmitted request: answer with the exact bytes sent before.
		sa.env.Stats.Drop("retransmitted-request")
		sa.outbox = append(sa.outbox, sa.lastResp...)
		return
	}
	if id != sa.nextPeerID {
		if id+1 == sa.nextPeerID && sa.lastRespID != id {
			// A retransmit of the request whose answer is still being
			// made (its AUTH or EAP step runs off the engine lock).
			sa.env.Stats.Drop("retransmitted-request")
			return
		}
		sa.env.Stats.Drop("message-id")
		return
	}
	ps, data, complete := sa.decrypt(m, &sa.reasmReq)
	if !complete {
		return
	}
	sa.lastRecv = sa.env.Now()
	sa.followNAT(local, remote)
	sa.nextPeerID++
	sa.lastReqHash = sha256.Sum256(m.Raw)
	sa.lastFrom, sa.lastTo = remote, local
	switch m.Header.Exchange {
	case ike.IKE_AUTH:
		if sa.eap == nil {
			sa.authMID = id // the first IKE_AUTH request's (RFC 9242 IntAuth)
		}
		sa.handleAuthRequest(id, ps)
	case ike.IKE_INTERMEDIATE:
		sa.handleIntermediateRequest(id, ps, data)
	case ike.INFORMATIONAL:
		sa.handleInformational(id, ps)
	case ike.CREATE_CHILD_SA:
		sa.handleCreateChildRequest(id, ps)
	case ike.IKE_FOLLOWUP_KE:
		sa.handleFollowupRequest(id, ps)
	default:
		sa.respond(m.Header.Exchange, id, []ike.Payload{&ike.Notify{NotifyType: ike.NotifyInvalidSyntax}})
	}
}

var errFatal = errors.New("fatal")

func ctx() context.Context { return context.Background() }

// ChildInfo is for Snapshot.
func (sa *SA) childByName(name string) *ChildSA {
	for _, c := range sa.Children {
		if c.Config.Name == name {
			return c
		}
	}
	return nil
}

func (sa *SA) removeChild(c *ChildSA, reason string) {
	if s := c.successor; s != nil && s.State == ChildInstalled && s.policies == nil {
		// make-before-break: the successor keeps the (same ReqID) policies
		s.policies, c.policies = c.policies, nil
	}
	c.uninstall(sa.env)
	if c.State == ChildInstalled || c.State == ChildRekeying {
		sa.event(EventChildDown, c.Config.Name, "", reason)
	}
	c.State = ChildDeleted
}

func spi32(b []byte) (uint32, bool) {
	if len(b) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(b), true
}

func spiBytes(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

var _ = provider.Initiator

// ChildSAs returns the SA's Child SAs.
func (sa *SA) ChildSAs() []*ChildSA { return sa.Children }

// HasRequestInFlight reports whether a request of ours awaits its answer.
func (sa *SA) HasRequestInFlight() bool { return sa.inflight != nil || sa.initEx != nil }

// ForceDestroy removes the SA and its children without telling the peer.
func (sa *SA) ForceDestroy(reason string) { sa.destroy(reason) }

// MarshalText makes event kinds print as words in JSON.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

func lastPayload(m *ike.Message) ike.Payload {
	if len(m.Payloads) == 0 {
		return nil
	}
	return m.Payloads[len(m.Payloads)-1]
}

// decrypt opens an SK message, or adds an SKF fragment and returns the
// whole message once complete (RFC 7383). For IKE_INTERMEDIATE it also
// returns the data IntAuth covers (of the unfragmented message).
func (sa *SA) decrypt(m *ike.Message, reasm **ike.Reassembler) (ps []ike.Payload, data []byte, complete bool) {
	var err error
	if _, frag := lastPayload(m).(*ike.EncryptedFragment); frag {
		if !sa.Conn.Fragmentation {
			sa.env.Stats.Drop("fragment-unwanted")
			return nil, nil, false
		}
		if *reasm == nil {
			*reasm = &ike.Reassembler{}
		}
		var done bool
		ps, done, err = (*reasm).Add(m, sa.in)
		if err != nil {
			sa.env.Stats.Drop("fragment")
			sa.logger().Debug("fragment dropped", "err", err)
			return nil, nil, false
		}
		if !done {
			return nil, nil, false
		}
		if m.Header.Exchange == ike.IKE_INTERMEDIATE {
			first, plain, err := ike.MarshalPayloads(ps)
			if err != nil {
				sa.env.Stats.Drop("fragment")
				return nil, nil, false
			}
			data = intAuthData(m.Raw, first, plain)
		}
		return ps, data, true
	}
	if m.Header.Exchange == ike.IKE_INTERMEDIATE {
		ps, data, err = sa.openWithData(m)
	} else {
		ps, err = ike.OpenMessage(m, sa.in)
	}
	if err != nil {
		sa.env.Stats.Drop("integrity")
		sa.logger().Debug("message failed integrity check", "exchange", m.Header.Exchange, "err", err)
		return nil, nil, false
	}
	return ps, data, true
}

// seal encrypts one message, split into SKF fragments when it exceeds the
// fragment size and both sides support RFC 7383.
func (sa *SA) seal(h ike.Header, ps []ike.Payload) ([][]byte, error) {
	b, err := ike.SealMessage(h, ps, sa.out)
	if err != nil {
		return nil, err
	}
	size := sa.env.FragmentSize
	if size == 0 {
		size = DefaultFragmentSize
	}
	if !sa.Conn.Fragmentation || !sa.peerFragmentation || len(b) <= size {
		return [][]byte{b}, nil
	}
	return ike.SealFragments(h, ps, sa.out, size)
}

// DefaultFragmentSize keeps fragments within a 1280-byte IPv6 MTU after
// IP (40), UDP (8) and the non-ESP marker (4).
const DefaultFragmentSize = 1228

// followNAT keeps the SA's addresses current from authenticated messages:
// a peer that floated to the NAT-T port (RFC 7296 §2.23, RFC 4555) is
// answered there, and a responder follows a NATed peer to its latest
// address. Other address changes need MOBIKE.
func (sa *SA) followNAT(local, remote netip.AddrPort) {
	if !remote.IsValid() || (remote == sa.Remote && local == sa.Local) {
		return
	}
	sameHost := remote.Addr() == sa.Remote.Addr() && local.Addr() == sa.Local.Addr()
	if !sameHost && (sa.Initiator || !sa.natRemote) {
		return
	}
	sa.logger().Info("peer address changed", "from", sa.Remote, "to", remote)
	sa.Remote, sa.Local = remote, local
}
