package ikesa

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/transform"
)

// createChild is a CREATE_CHILD_SA for a Child SA in progress (either side).
type createChild struct {
	ni, nr []byte
	ke     *ike.KeyExchange // the initiator's KE payload (responder side)
	rekey  *ChildSA
}

// peerRekey records the peer's rekey of one of our SAs (for collisions).
type peerRekey struct {
	ni, nr []byte
	child  *ChildSA
	ike    *SA
}

func pfsGroup(ps []transform.Proposal) uint16 { return firstKE(ps) }

// lowestNonce is the smallest of the exchange's two nonces (§2.8.1).
func lowestNonce(ni, nr []byte) []byte {
	if bytes.Compare(ni, nr) < 0 {
		return ni
	}
	return nr
}

// ourExchangeLoses reports whether our exchange created the redundant SA:
// the one whose exchange has the lowest of the four nonces.
func ourExchangeLoses(ourNi, ourNr []byte, p *peerRekey) bool {
	return bytes.Compare(lowestNonce(ourNi, ourNr), lowestNonce(p.ni, p.nr)) < 0
}

// CreateChild sets up a new Child SA for cfg on this IKE SA.
func (sa *SA) CreateChild(cfg *Child) error {
	if sa.State != StateEstablished {
		return fmt.Errorf("IKE SA is %s", sa.State)
	}
	return sa.startCreateChild(cfg, nil)
}

// RekeyChild rekeys the named Child SA (make-before-break).
func (sa *SA) RekeyChild(name string) error {
	c := sa.childByName(name)
	if c == nil || c.State != ChildInstalled {
		return fmt.Errorf("no installed Child SA %q", name)
	}
	return sa.startCreateChild(c.Config, c)
}

func (sa *SA) startCreateChild(cfg *Child, old *ChildSA) error {
	c, cps, err := sa.childRequest(cfg, old)
	if err != nil {
		return err
	}
	c.ni, c.weInitiated = sa.env.nonce(), true
	var ke transform.KeyExchange
	ps := []ike.Payload{}
	if old != nil {
		ps = append(ps, &ike.Notify{Protocol: ike.ProtoESP, SPI: spiBytes(old.SPIIn), NotifyType: ike.NotifyRekeySa})
		old.State = ChildRekeying
		c.rekeyOf = old
	}
	for _, p := range cps {
		ps = append(ps, p)
		if _, ok := p.(*ike.SA); ok {
			ps = append(ps, &ike.Nonce{Data: c.ni})
			if g := pfsGroup(cfg.ESPProposals); g != 0 {
				if ke, err = transform.NewKeyExchange(g); err != nil {
					return err
				}
				ps = append(ps, &ike.KeyExchange{Group: g, Data: ke.Public()})
			}
		}
	}
	sa.queueRequest(&request{exchange: ike.CREATE_CHILD_SA, payloads: ps,
		onResponse: func(resp []ike.Payload) error { return sa.finishCreateChild(c, old, ke, resp) }})
	return nil
}

func (sa *SA) finishCreateChild(c, old *ChildSA, ke transform.KeyExchange, ps []ike.Payload) error {
	abandon := func(reason string) error {
		c.uninstall(sa.env)
		if old != nil && old.State == ChildRekeying {
			old.State = ChildInstalled
			old.rekeyAt = sa.env.Now().Add(10 * time.Second) // try again soon
		}
		sa.logger().Info("CREATE_CHILD_SA failed", "child", c.Config.Name, "reason", reason)
		class := "peer-error"
		if old != nil {
			// The old child stays; an operator's rekey request learns why
			// this one did not happen (a retry follows in 10 s).
			class = "rekey"
		}
		sa.LastFailure = reason
		sa.event(EventChildFailed, c.Config.Name, class, reason)
		return fmt.Errorf("%s", reason)
	}
	if n := ike.FindNotify(ps, ike.NotifyChildSaNotFound); n != nil {
		c.uninstall(sa.env)
		return nil // the peer deleted the old SA meanwhile
	}
	if n := ike.FindNotify(ps, ike.NotifyTemporaryFailure); n != nil {
		return abandon("peer answered TEMPORARY_FAILURE (a rekey of its own is in progress)")
	}
	nonce := ike.Get[*ike.Nonce](ps)
	var shared []byte
	if ike.FindNotify(ps, ike.NotifyNoProposalChosen) == nil && ike.FindNotify(ps, ike.NotifyTsUnacceptable) == nil {
		if nonce == nil {
			return abandon("CREATE_CHILD_SA response without a nonce")
		}
		c.nr = slices.Clone(nonce.Data)
		if ke != nil {
			kr := ike.Get[*ike.KeyExchange](ps)
			if kr == nil || kr.Group != ke.Method() {
				return abandon("peer did not answer our PFS key exchange")
			}
			var err error
			if shared, err = ke.SharedSecret(kr.Data); err != nil {
				return abandon(fmt.Sprintf("peer's PFS key exchange data is invalid: %v", err))
			}
			defer clear(shared)
		}
	}
	if !sa.finishChildRequest(c, ps, shared) {
		if old != nil && old.State == ChildRekeying {
			old.State = ChildInstalled
		}
		return nil
	}
	if old == nil {
		return nil
	}
	sa.env.Stats.Rekeys["child"]++
	if p := old.peerRekey; p != nil && p.child != nil && p.child.State == ChildInstalled {
		sa.env.Stats.Rekeys["collision"]++
		if ourExchangeLoses(c.ni, c.nr, p) {
			// Ours is redundant: delete it; the peer deletes the old one.
			sa.logger().Info("simultaneous Child SA rekey: ours lost", "child", c.Config.Name)
			old.successor = p.child
			c.successor = p.child
			sa.deleteChild(c, "redundant after a simultaneous rekey")
			return nil
		}
		sa.logger().Info("simultaneous Child SA rekey: ours won", "child", c.Config.Name)
	}
	old.successor = c
	sa.deleteChild(old, "rekeyed")
	sa.event(EventRekeyed, c.Config.Name, "", "")
	return nil
}

// handleCreateChildRequest answers CREATE_CHILD_SA: a new or rekeyed Child
// SA, or an IKE SA rekey.
func (sa *SA) handleCreateChildRequest(id uint32, ps []ike.Payload) {
	reply := func(n ike.NotifyType, data []byte) {
		sa.respond(ike.CREATE_CHILD_SA, id, []ike.Payload{&ike.Notify{NotifyType: n, Data: data}})
	}
	if sa.State != StateEstablished && sa.State != StateRekeying {
		reply(ike.NotifyTemporaryFailure, nil)
		return
	}
	sap := ike.Get[*ike.SA](ps)
	nonce := ike.Get[*ike.Nonce](ps)
	if sap == nil || nonce == nil || len(sap.Proposals) == 0 {
		reply(ike.NotifyInvalidSyntax, nil)
		return
	}
	if sap.Proposals[0].Protocol == ike.ProtoIKE {
		sa.handleIKERekeyRequest(id, sap, nonce, ike.Get[*ike.KeyExchange](ps))
		return
	}
	cc := &createChild{ni: slices.Clone(nonce.Data), nr: sa.env.nonce(), ke: ike.Get[*ike.KeyExchange](ps)}
	if n := ike.FindNotify(ps, ike.NotifyRekeySa); n != nil {
		spi, ok := spi32(n.SPI)
		var old *ChildSA
		for _, c := range sa.Children {
			if ok && c.SPIOut == spi && (c.State == ChildInstalled || c.State == ChildRekeying) {
				old = c
			}
		}
		if old == nil {
			sa.respond(ike.CREATE_CHILD_SA, id, []ike.Payload{&ike.Notify{Protocol: ike.ProtoESP, SPI: n.SPI, NotifyType: ike.NotifyChildSaNotFound}})
			return
		}
		cc.rekey = old
	}
	c, out := sa.childRespond(ps, cc)
	sa.respond(ike.CREATE_CHILD_SA, id, out)
	if c == nil {
		return
	}
	sa.childUp(c)
	if old := cc.rekey; old != nil {
		old.peerRekey = &peerRekey{ni: cc.ni, nr: cc.nr, child: c}
		if old.successor == nil || old.successor.State != ChildInstalled {
			old.successor = c
		}
		sa.event(EventRekeyed, c.Config.Name, "", "")
	}
}

// RekeyIKE starts an IKE SA rekey (§2.18). The new SA appears in
// TakeSpawned; the old one is deleted once the new one is up.
func (sa *SA) RekeyIKE() error {
	if sa.State != StateEstablished {
		return fmt.Errorf("IKE SA is %s", sa.State)
	}
	sa.State = StateRekeying
	spi := randSPI(sa.env)
	ni := sa.env.nonce()
	group := firstKE(sa.Conn.IKEProposals)
	ke, err := transform.NewKeyExchange(group)
	if err != nil {
		return err
	}
	sap := &ike.SA{}
	for i, p := range sa.Conn.IKEProposals {
		sap.Proposals = append(sap.Proposals, p.ToWire(uint8(i+1), binary.BigEndian.AppendUint64(nil, spi)))
	}
	ps := []ike.Payload{sap, &ike.Nonce{Data: ni}, &ike.KeyExchange{Group: group, Data: ke.Public()}}
	sa.queueRequest(&request{exchange: ike.CREATE_CHILD_SA, payloads: ps, onResponse: func(resp []ike.Payload) error {
		return sa.finishIKERekey(spi, ni, ke, resp)
	}})
	return nil
}

func (sa *SA) finishIKERekey(spii uint64, ni []byte, ke transform.KeyExchange, ps []ike.Payload) error {
	retry := func(reason string) error {
		if sa.State == StateRekeying {
			sa.State = StateEstablished
		}
		sa.rekeyAt = sa.env.Now().Add(10 * time.Second)
		return fmt.Errorf("IKE rekey: %s", reason)
	}
	for _, p := range ps {
		if n, ok := p.(*ike.Notify); ok && n.NotifyType.IsError() {
			return retry(fmt.Sprintf("peer answered %s", n.NotifyType))
		}
	}
	sap, nonce, kr := ike.Get[*ike.SA](ps), ike.Get[*ike.Nonce](ps), ike.Get[*ike.KeyExchange](ps)
	if sap == nil || nonce == nil || kr == nil || len(sap.Proposals) != 1 || len(sap.Proposals[0].SPI) != 8 {
		return retry("malformed response")
	}
	suite, _, err := transform.Select(sa.Conn.IKEProposals, sap.Proposals, true)
	if err != nil || kr.Group != ke.Method() || suite.KE != ke.Method() {
		return retry("peer chose something we did not offer")
	}
	shared, err := ke.SharedSecret(kr.Data)
	if err != nil {
		return retry(err.Error())
	}
	f := &followup{suite: suite, spii: spii, spir: binary.BigEndian.Uint64(sap.Proposals[0].SPI), ni: ni,
		nr: slices.Clone(nonce.Data), shared: [][]byte{shared}}
	if n := ike.FindNotify(ps, ike.NotifyAdditionalKeyExchange); n != nil {
		f.link = slices.Clone(n.Data)
	}
	if err := sa.followupStep(f, sa.completeInitiatorRekey); err != nil {
		return retry(err.Error())
	}
	return nil
}

// completeInitiatorRekey creates the new IKE SA once every key exchange of
// the rekey is done, resolves collisions and retires the old SA.
func (sa *SA) completeInitiatorRekey(f *followup) error {
	defer f.zero()
	ni, nr := f.ni, f.nr
	n := sa.successorSA(true, f.spii, f.spir, f.suite, f.ni, f.nr, nil)
	if err := n.setKeys(sa.rekeyKeys(f)); err != nil {
		sa.State = StateEstablished
		return err
	}
	sa.spawned = append(sa.spawned, n)
	sa.env.Stats.Rekeys["ike"]++
	if p := sa.peerIKERekey; p != nil && p.ike != nil && !p.ike.dead {
		sa.env.Stats.Rekeys["collision"]++
		if ourExchangeLoses(ni, nr, p) {
			sa.logger().Info("simultaneous IKE SA rekey: ours lost")
			sa.successor = p.ike
			n.Delete("redundant after a simultaneous rekey")
			return nil
		}
		sa.logger().Info("simultaneous IKE SA rekey: ours won")
	}
	sa.successor = n
	sa.moveChildren(n)
	sa.event(EventRekeyed, "", "", "")
	sa.Delete("rekeyed")
	return nil
}

// successorSA builds the new IKE SA of a rekey.
func (sa *SA) successorSA(initiator bool, spii, spir uint64, suite transform.Suite, ni, nr, _ []byte) *SA {
	n := newSA(sa.env, sa.Conn, initiator, sa.Local, sa.Remote)
	n.SPIi, n.SPIr, n.Suite, n.ni, n.nr = spii, spir, suite, ni, nr
	n.State = StateEstablished
	n.Established = sa.env.Now()
	n.natLocal, n.natRemote, n.peerFragmentation, n.peerSigHashes = sa.natLocal, sa.natRemote, sa.peerFragmentation, sa.peerSigHashes
	n.peerMobike = sa.peerMobike
	n.ppk.used = sa.ppk.used // its keys come from our (PPK-mixed) SK_d
	n.armDPD()
	n.armRekey()
	n.reauthAt = sa.reauthAt
	return n
}

func (sa *SA) moveChildren(to *SA) {
	var redo []*ChildSA
	for _, c := range sa.Children {
		switch c.State {
		case ChildDeleted:
			continue
		case ChildDeleting:
			redo = append(redo, c) // its Delete went down with the old IKE SA
		case ChildRekeying:
			c.State = ChildInstalled // the rekey's answer will not come
			c.rekeyAt = sa.env.Now().Add(10 * time.Second)
		}
		to.Children = append(to.Children, c)
	}
	sa.Children = nil
	for _, c := range redo {
		to.deleteChild(c, "deleted while the IKE SA was rekeyed")
	}
}

func (sa *SA) handleIKERekeyRequest(id uint32, sap *ike.SA, nonce *ike.Nonce, ke *ike.KeyExchange) {
	reply := func(n ike.NotifyType, data []byte) {
		sa.respond(ike.CREATE_CHILD_SA, id, []ike.Payload{&ike.Notify{NotifyType: n, Data: data}})
	}
	suite, num, err := transform.Select(sa.Conn.IKEProposals, sap.Proposals, sa.Conn.PreferOurs)
	if err != nil {
		reply(ike.NotifyNoProposalChosen, nil)
		return
	}
	if ke == nil || ke.Group != suite.KE {
		reply(ike.NotifyInvalidKePayload, binary.BigEndian.AppendUint16(nil, suite.KE))
		return
	}
	var peerSPI []byte
	for _, p := range sap.Proposals {
		if p.Number == num {
			peerSPI = p.SPI
		}
	}
	if len(peerSPI) != 8 {
		reply(ike.NotifyInvalidSyntax, nil)
		return
	}
	pub, shared, err := transform.RespondKeyExchange(suite.KE, ke.Data)
	if err != nil {
		reply(ike.NotifyInvalidSyntax, nil)
		return
	}
	f := &followup{suite: suite, spii: binary.BigEndian.Uint64(peerSPI), spir: randSPI(sa.env),
		ni: slices.Clone(nonce.Data), nr: sa.env.nonce(), shared: [][]byte{shared}}
	out := []ike.Payload{
		&ike.SA{Proposals: []ike.Proposal{{Number: num, Protocol: ike.ProtoIKE, SPI: binary.BigEndian.AppendUint64(nil, f.spir), Transforms: suite.Transforms()}}},
		&ike.Nonce{Data: f.nr}, &ike.KeyExchange{Group: suite.KE, Data: pub}}
	if len(suite.AdditionalKEs()) > 0 {
		f.link = sa.env.nonce()[:8]
		out = append(out, &ike.Notify{NotifyType: ike.NotifyAdditionalKeyExchange, Data: f.link})
		sa.respond(ike.CREATE_CHILD_SA, id, out)
		if sa.pendingFollowup != nil {
			sa.pendingFollowup.zero()
		}
		sa.pendingFollowup = f
		return
	}
	sa.respond(ike.CREATE_CHILD_SA, id, out)
	sa.completeResponderRekey(f)
}

// TakeSpawned returns IKE SAs created by rekeys, for the engine to index.
func (sa *SA) TakeSpawned() []*SA {
	s := sa.spawned
	sa.spawned = nil
	return s
}

// armRekey sets the IKE SA's rekey and expiry times, with up to 10 %
// jitter taken off the rekey time so both ends rarely rekey together.
func (sa *SA) armRekey() {
	now := sa.env.Now()
	if t := sa.Conn.RekeyTime; t > 0 {
		sa.rekeyAt = now.Add(t - sa.env.jitter(t/10))
	}
	if t := sa.Conn.LifeTime; t > 0 {
		sa.expireAt = now.Add(t)
	}
}

func (c *ChildSA) armLifetimes(env *Env, now time.Time) {
	if t := c.Config.RekeyTime; t > 0 {
		c.rekeyAt = now.Add(t - env.jitter(t/10))
	}
	if t := c.Config.LifeTime; t > 0 {
		c.expireAt = now.Add(t)
	}
}

func (env *Env) jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	var b [8]byte
	env.randReader().Read(b[:])
	return time.Duration(binary.BigEndian.Uint64(b[:]) % uint64(max))
}

// childTimers rekeys or expires Child SAs and the IKE SA when due.
func (sa *SA) childTimers(now time.Time) {
	if sa.State != StateEstablished && sa.State != StateRekeying {
		return
	}
	if !sa.expireAt.IsZero() && !now.Before(sa.expireAt) {
		sa.expireAt = time.Time{}
		sa.Delete("IKE SA lifetime expired")
		return
	}
	if !sa.rekeyAt.IsZero() && !now.Before(sa.rekeyAt) && sa.State == StateEstablished {
		sa.rekeyAt = time.Time{}
		if err := sa.RekeyIKE(); err != nil {
			sa.logger().Info("IKE rekey failed to start", "err", err)
		}
	}
	for _, c := range slices.Clone(sa.Children) {
		if !c.expireAt.IsZero() && !now.Before(c.expireAt) && c.State != ChildDeleting {
			c.expireAt, c.rekeyAt = time.Time{}, time.Time{}
			sa.deleteChild(c, "lifetime expired")
			continue
		}
		if !c.rekeyAt.IsZero() && !now.Before(c.rekeyAt) && c.State == ChildInstalled {
			c.rekeyAt = time.Time{}
			if err := sa.startCreateChild(c.Config, c); err != nil {
				sa.logger().Info("Child SA rekey failed to start", "child", c.Config.Name, "err", err)
			}
		}
	}
}

// Successor is the IKE SA that replaced this one in a rekey (or nil).
func (sa *SA) Successor() *SA { return sa.successor }
