package ikesa

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/transform"
)

// initState is the initiator's IKE_SA_INIT in progress.
type initState struct {
	ke       transform.KeyExchange
	cookie   []byte
	request  []byte
	tries    int
	deadline time.Time
	retries  int // INVALID_KE / COOKIE restarts
	child    string
}

// NewInitiator starts an IKE SA for conn from local to remote; child names
// the Child SA to set up with IKE_AUTH ("" = the first configured).
func NewInitiator(env *Env, conn *Connection, child string, local, remote netip.AddrPort) (*SA, error) {
	if len(conn.IKEProposals) == 0 {
		return nil, fmt.Errorf("connection %q has no IKE proposals", conn.Name)
	}
	sa := newSA(env, conn, true, local, remote)
	sa.SPIi = randSPI(env)
	group := firstKE(conn.IKEProposals)
	sa.initEx = &initState{child: child}
	if err := sa.sendInit(group, true); err != nil {
		return nil, err
	}
	sa.logger().Info("initiating IKE SA", "remote", remote)
	return sa, nil
}

func firstKE(ps []transform.Proposal) uint16 {
	for _, p := range ps {
		for _, t := range p.Transforms {
			if t.Type == ike.TransformKE {
				return t.ID
			}
		}
	}
	return 0
}

func proposalsOffer(ps []transform.Proposal, group uint16) bool {
	for _, p := range ps {
		for _, t := range p.Transforms {
			if t.Type == ike.TransformKE && t.ID == group {
				return true
			}
		}
	}
	return false
}

// sendInit sends the IKE_SA_INIT request; fresh makes a new key share and
// nonce (first try, INVALID_KE), otherwise the message is repeated with the
// cookie (the responder's cookie covers Ni).
func (sa *SA) sendInit(group uint16, fresh bool) error {
	ex := sa.initEx
	if fresh {
		ke, err := transform.NewKeyExchange(group)
		if err != nil {
			return err
		}
		ex.ke = ke
		sa.ni = sa.env.nonce()
	}
	ke := ex.ke
	var ps []ike.Payload
	if ex.cookie != nil {
		ps = append(ps, &ike.Notify{NotifyType: ike.NotifyCookie, Data: ex.cookie})
	}
	sap := &ike.SA{}
	for i, p := range sa.Conn.IKEProposals {
		sap.Proposals = append(sap.Proposals, p.ToWire(uint8(i+1), nil))
	}
	ps = append(ps, sap, &ike.KeyExchange{Group: group, Data: ke.Public()}, &ike.Nonce{Data: sa.ni})
	ps = append(ps, sa.initNotifies()...)
	m := &ike.Message{Header: sa.header(ike.IKE_SA_INIT, 0, false), Payloads: ps}
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	ex.request = b
	sa.initI = b
	ex.tries = 1
	ex.deadline = sa.env.Now().Add(sa.env.Retransmit.after(0))
	sa.outbox = append(sa.outbox, b)
	sa.nextReqID = 1
	return nil
}

func (sa *SA) initNotifies() []ike.Payload {
	src := natHash(sa.SPIi, sa.SPIr, sa.Local)
	if sa.Conn.ForceEncap {
		// A source hash that cannot match: the peer believes we are behind
		// a NAT and both sides encapsulate ESP in UDP (strongSwan's encap).
		src = make([]byte, len(src))
		sa.env.randReader().Read(src)
	}
	ps := []ike.Payload{
		&ike.Notify{NotifyType: ike.NotifyNatDetectionSourceIp, Data: src},
		&ike.Notify{NotifyType: ike.NotifyNatDetectionDestinationIp, Data: natHash(sa.SPIi, sa.SPIr, sa.Remote)},
	}
	if sa.Conn.Fragmentation {
		ps = append(ps, &ike.Notify{NotifyType: ike.NotifyIkev2FragmentationSupported})
	}
	if offersAddKE(sa.Conn.IKEProposals) {
		ps = append(ps, &ike.Notify{NotifyType: ike.NotifyIntermediateExchangeSupported})
	}
	ps = append(ps, sa.ppkInitNotify()...)
	// RFC 7427 hash algorithms: SHA2-256, -384, -512, Identity.
	ps = append(ps, &ike.Notify{NotifyType: ike.NotifySignatureHashAlgorithms, Data: []byte{0, 2, 0, 3, 0, 4, 0, 5}})
	return ps
}

// natHash is the NAT_DETECTION_*_IP data (RFC 7296 §2.23).
func natHash(spii, spir uint64, ap netip.AddrPort) []byte {
	h := sha1.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], spii)
	h.Write(b[:])
	binary.BigEndian.PutUint64(b[:], spir)
	h.Write(b[:])
	h.Write(ap.Addr().Unmap().AsSlice())
	binary.BigEndian.PutUint16(b[:2], ap.Port())
	h.Write(b[:2])
	return h.Sum(nil)
}

func (sa *SA) initRetransmit(now time.Time) {
	ex := sa.initEx
	if ex.tries >= sa.env.Retransmit.Tries {
		sa.peerSilent(ike.IKE_SA_INIT, ex.tries)
		return
	}
	ex.deadline = now.Add(sa.env.Retransmit.after(ex.tries))
	ex.tries++
	sa.env.Stats.Retransmits++
	sa.outbox = append(sa.outbox, ex.request)
}

func (sa *SA) handleInitMessage(m *ike.Message) {
	if !sa.Initiator {
		// A retransmitted IKE_SA_INIT request: the cached response.
		if !m.Header.IsResponse() && bytes.Equal(m.Raw, sa.initI) && sa.initR != nil {
			sa.env.Stats.Drop("retransmitted-request")
			sa.outbox = append(sa.outbox, sa.initR)
			return
		}
		sa.env.Stats.Drop("unexpected-init")
		return
	}
	if !m.Header.IsResponse() || sa.initEx == nil || m.Header.MessageID != 0 {
		sa.env.Stats.Drop("unexpected-init")
		return
	}
	ex := sa.initEx
	if n := m.Notify(ike.NotifyCookie); n != nil {
		if ex.retries >= 3 {
			sa.fail("cookie", "responder keeps asking for a COOKIE")
			return
		}
		ex.retries++
		ex.cookie = slices.Clone(n.Data)
		if err := sa.sendInit(ex.ke.Method(), false); err != nil {
			sa.fail("internal", err.Error())
		}
		return
	}
	if n := m.Notify(ike.NotifyInvalidKePayload); n != nil {
		if len(n.Data) != 2 {
			sa.env.Stats.Drop("malformed")
			return
		}
		group := binary.BigEndian.Uint16(n.Data)
		if !proposalsOffer(sa.Conn.IKEProposals, group) || group == ex.ke.Method() || ex.retries >= 3 {
			sa.fail("proposal", fmt.Sprintf("peer asked for key exchange method %d, which our proposals do not offer (ours: %s)", group, proposalList(sa.Conn.IKEProposals)))
			return
		}
		ex.retries++
		sa.logger().Info("peer asked for another key exchange method", "group", group)
		if err := sa.sendInit(group, true); err != nil {
			sa.fail("internal", err.Error())
		}
		return
	}
	for _, p := range m.Payloads {
		if n, ok := p.(*ike.Notify); ok && n.NotifyType.IsError() {
			class, reason := "peer-error", fmt.Sprintf("peer answered IKE_SA_INIT with %s", n.NotifyType)
			if n.NotifyType == ike.NotifyNoProposalChosen {
				class = "proposal"
				reason = fmt.Sprintf("peer accepted none of our IKE proposals (ours: %s)", proposalList(sa.Conn.IKEProposals))
			}
			sa.fail(class, reason)
			return
		}
	}
	sap, ke, nonce := ike.Get[*ike.SA](m.Payloads), ike.Get[*ike.KeyExchange](m.Payloads), ike.Get[*ike.Nonce](m.Payloads)
	if sap == nil || ke == nil || nonce == nil || len(sap.Proposals) != 1 || m.Header.SPIr == 0 {
		sa.env.Stats.Drop("malformed")
		return
	}
	suite, _, err := transform.Select(sa.Conn.IKEProposals, sap.Proposals, true)
	if err != nil || suite.KE != ex.ke.Method() || ke.Group != suite.KE {
		sa.fail("proposal", fmt.Sprintf("peer chose a proposal we did not offer: %v", err))
		return
	}
	shared, err := ex.ke.SharedSecret(ke.Data)
	if err != nil {
		sa.fail("ke", fmt.Sprintf("peer's key exchange data is invalid: %v", err))
		return
	}
	sa.Suite = suite
	sa.SPIr = m.Header.SPIr
	sa.nr = slices.Clone(nonce.Data)
	sa.initR = slices.Clone(m.Raw)
	sa.checkNAT(m.Payloads)
	sa.peerFragmentation = m.Notify(ike.NotifyIkev2FragmentationSupported) != nil
	sa.peerSigHashes = parseHashes(m.Notify(ike.NotifySignatureHashAlgorithms))
	sa.ppk.peer = m.Notify(ike.NotifyUsePpk) != nil
	err = sa.deriveKeys(shared)
	clear(shared)
	if err != nil {
		sa.fail("internal", err.Error())
		return
	}
	child := ex.child
	sa.initEx = nil
	if len(suite.AdditionalKEs()) > 0 {
		if m.Notify(ike.NotifyIntermediateExchangeSupported) == nil {
			sa.fail("proposal", "peer chose additional key exchanges but does not support IKE_INTERMEDIATE")
			return
		}
		sa.startIntermediate(child)
		return
	}
	sa.startAuth(child)
}

func parseHashes(n *ike.Notify) []uint16 {
	if n == nil {
		return nil
	}
	var out []uint16
	for i := 0; i+1 < len(n.Data); i += 2 {
		out = append(out, binary.BigEndian.Uint16(n.Data[i:]))
	}
	return out
}

func proposalList(ps []transform.Proposal) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return fmt.Sprint(s)
}

// checkNAT compares the peer's NAT_DETECTION payloads with what we see and
// floats to the NAT-T port when a NAT is in the path (RFC 7296 §2.23).
func (sa *SA) checkNAT(ps []ike.Payload) {
	var src, dst [][]byte
	for _, p := range ps {
		if n, ok := p.(*ike.Notify); ok {
			switch n.NotifyType {
			case ike.NotifyNatDetectionSourceIp:
				src = append(src, n.Data)
			case ike.NotifyNatDetectionDestinationIp:
				dst = append(dst, n.Data)
			}
		}
	}
	if len(src) == 0 || len(dst) == 0 {
		return
	}
	spir := sa.SPIr
	if !sa.Initiator {
		spir = 0 // the initiator hashed before it knew SPIr
	}
	sa.natRemote = !containsBytes(src, natHash(sa.SPIi, spir, sa.Remote))
	sa.natLocal = !containsBytes(dst, natHash(sa.SPIi, spir, sa.Local)) || sa.Conn.ForceEncap
	if (sa.natLocal || sa.natRemote) && sa.Initiator && sa.env.NATPort != 0 {
		sa.Local = netip.AddrPortFrom(sa.Local.Addr(), sa.env.NATPort)
		sa.Remote = netip.AddrPortFrom(sa.Remote.Addr(), 4500)
		sa.logger().Info("NAT detected, floating to the NAT-T port", "local_behind_nat", sa.natLocal, "remote_behind_nat", sa.natRemote)
	}
}

// NATDetected reports (we are behind a NAT, the peer is behind a NAT).
func (sa *SA) NATDetected() (local, remote bool) { return sa.natLocal, sa.natRemote }

func containsBytes(list [][]byte, b []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, b) {
			return true
		}
	}
	return false
}

func (sa *SA) deriveKeys(shared []byte) error {
	skeyseed := sa.Suite.SKEYSEED(sa.ni, sa.nr, shared)
	keys := sa.Suite.DeriveIKEKeys(skeyseed, sa.ni, sa.nr, sa.SPIi, sa.SPIr)
	clear(skeyseed)
	return sa.setKeys(keys)
}

func (sa *SA) setKeys(keys *transform.IKEKeys) error {
	ci, err := sa.Suite.NewSKCipher(keys.SKei, keys.SKai)
	if err != nil {
		return err
	}
	cr, err := sa.Suite.NewSKCipher(keys.SKer, keys.SKar)
	if err != nil {
		return err
	}
	sa.keys = keys
	if sa.Initiator {
		sa.out, sa.in = ci, cr
	} else {
		sa.out, sa.in = cr, ci
	}
	return nil
}

// HalfOpenTimeout is how long a responder keeps an SA waiting for IKE_AUTH.
const HalfOpenTimeout = 30 * time.Second

// InitRejection is a stateless answer to an IKE_SA_INIT request.
type InitRejection struct {
	Reply  []byte
	Class  string
	Reason string
}

// RespondInit answers an IKE_SA_INIT request for conn. It returns the new
// half-open SA (its response is in its outbox), or a rejection whose Reply
// the engine sends without keeping state.
func RespondInit(env *Env, conn *Connection, m *ike.Message, local, remote netip.AddrPort) (*SA, *InitRejection) {
	reject := func(n ike.NotifyType, data []byte, class, reason string) (*SA, *InitRejection) {
		h := ike.Header{SPIi: m.Header.SPIi, Major: 2, Exchange: ike.IKE_SA_INIT, Flags: ike.FlagResponse}
		r := &ike.Message{Header: h, Payloads: []ike.Payload{&ike.Notify{NotifyType: n, Data: data}}}
		b, _ := r.Marshal()
		env.Stats.Handshakes[class]++
		return nil, &InitRejection{Reply: b, Class: class, Reason: reason}
	}
	sap, ke, nonce := ike.Get[*ike.SA](m.Payloads), ike.Get[*ike.KeyExchange](m.Payloads), ike.Get[*ike.Nonce](m.Payloads)
	if sap == nil || ke == nil || nonce == nil || len(nonce.Data) < 16 || len(nonce.Data) > 256 {
		return reject(ike.NotifyInvalidSyntax, nil, "malformed", "IKE_SA_INIT request lacks SA, KE or Nonce")
	}
	suite, _, err := transform.Select(conn.IKEProposals, sap.Proposals, conn.PreferOurs)
	if err != nil {
		return reject(ike.NotifyNoProposalChosen, nil, "proposal", fmt.Sprintf("no IKE proposal in common: %v", err))
	}
	if ke.Group != suite.KE {
		return reject(ike.NotifyInvalidKePayload, binary.BigEndian.AppendUint16(nil, suite.KE), "invalid-ke",
			fmt.Sprintf("peer sent key exchange method %d, we chose %d", ke.Group, suite.KE))
	}
	pub, shared, err := transform.RespondKeyExchange(suite.KE, ke.Data)
	if err != nil {
		return reject(ike.NotifyInvalidSyntax, nil, "ke", fmt.Sprintf("peer's key exchange data is invalid: %v", err))
	}
	defer clear(shared)
	sa := newSA(env, conn, false, local, remote)
	sa.SPIi, sa.SPIr = m.Header.SPIi, randSPI(env)
	sa.Suite = suite
	sa.ni, sa.nr = slices.Clone(nonce.Data), env.nonce()
	sa.initI = slices.Clone(m.Raw)
	sa.checkNAT(m.Payloads)
	sa.peerFragmentation = m.Notify(ike.NotifyIkev2FragmentationSupported) != nil
	sa.peerSigHashes = parseHashes(m.Notify(ike.NotifySignatureHashAlgorithms))
	sa.ppk.peer = m.Notify(ike.NotifyUsePpk) != nil
	ps := []ike.Payload{
		&ike.SA{Proposals: []ike.Proposal{{Number: 1, Protocol: ike.ProtoIKE, Transforms: suite.Transforms()}}},
		&ike.KeyExchange{Group: suite.KE, Data: pub},
		&ike.Nonce{Data: sa.nr},
	}
	ps = append(ps, sa.initNotifies()...)
	ps = append(ps, sa.certReq()...)
	r := &ike.Message{Header: sa.header(ike.IKE_SA_INIT, 0, true), Payloads: ps}
	b, err := r.Marshal()
	if err != nil {
		return reject(ike.NotifyInvalidSyntax, nil, "internal", err.Error())
	}
	if err := sa.deriveKeys(shared); err != nil {
		return reject(ike.NotifyNoProposalChosen, nil, "internal", err.Error())
	}
	sa.initR = b
	sa.outbox = append(sa.outbox, b)
	sa.nextPeerID = 1
	sa.halfOpenUntil = env.Now().Add(HalfOpenTimeout)
	sa.logger().Debug("IKE_SA_INIT answered", "remote", remote, "proposal", suite.String())
	return sa, nil
}

// certReq is the CERTREQ payload for a peer that proves itself with a
// certificate: in the responder's IKE_SA_INIT and the initiator's IKE_AUTH.
func (sa *SA) certReq() []ike.Payload {
	if len(sa.Conn.Remote.CertReq) == 0 {
		return nil
	}
	return []ike.Payload{&ike.CertificateRequest{Encoding: 4, Data: sa.Conn.Remote.CertReq}}
}
