package ikesa

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transform"
	"github.com/veil-ipsec/veil/core/ts"
)

// ChildState of a Child SA.
type ChildState uint8

const (
	ChildCreating ChildState = iota + 1
	ChildInstalled
	ChildRekeying
	ChildDeleting
	ChildDeleted
	ChildFailed
)

func (s ChildState) String() string {
	return [...]string{"", "CREATING", "INSTALLED", "REKEYING", "DELETING", "DELETED", "FAILED"}[s]
}

// ChildSA is one negotiated pair of ESP SAs with their policies.
type ChildSA struct {
	Config        *Child
	ReqID         uint32
	State         ChildState
	Mode          provider.Mode
	Suite         transform.Suite
	SPIIn, SPIOut uint32
	LocalTS       []provider.TrafficSelector
	RemoteTS      []provider.TrafficSelector
	Established   time.Time

	installedIn, installedOut bool
	policies                  []*provider.Policy
	rekeyAt, expireAt         time.Time
	// initiator side, while the request is out
	proposedTSi, proposedTSr []provider.TrafficSelector
	// nonces of the CREATE_CHILD_SA exchange (nil: the IKE SA's, for the
	// child made with IKE_AUTH)
	ni, nr []byte
	// weInitiated: we sent the CREATE_CHILD_SA request that made this SA.
	// KEYMAT is split by that exchange's roles, not the IKE SA's (§2.17).
	weInitiated   bool
	rekeyOf       *ChildSA // the SA this one replaces
	successor     *ChildSA // the SA that replaces this one
	peerRekey     *peerRekey
	inDst, outDst netip.Addr
}

func resolveAll(list []provider.TrafficSelector, addr netip.Addr) []provider.TrafficSelector {
	out := make([]provider.TrafficSelector, len(list))
	for i, t := range list {
		out[i] = ts.Resolve(t, addr)
	}
	return out
}

func toWireTS(initiator bool, list []provider.TrafficSelector) *ike.TrafficSelectors {
	p := &ike.TrafficSelectors{Initiator: initiator}
	for _, t := range list {
		p.Selectors = append(p.Selectors, ike.TrafficSelector{Protocol: t.Protocol, StartPort: t.StartPort, EndPort: t.EndPort, Start: t.Start, End: t.End})
	}
	return p
}

func fromWireTS(p *ike.TrafficSelectors) []provider.TrafficSelector {
	if p == nil {
		return nil
	}
	out := make([]provider.TrafficSelector, 0, len(p.Selectors))
	for _, t := range p.Selectors {
		out = append(out, provider.TrafficSelector{Start: t.Start, End: t.End, Protocol: t.Protocol, StartPort: t.StartPort, EndPort: t.EndPort})
	}
	return out
}

// childRequest allocates our inbound SPI and builds SA, TSi, TSr (and
// USE_TRANSPORT_MODE) for cfg.
func (sa *SA) childRequest(cfg *Child, rekey *ChildSA) (*ChildSA, []ike.Payload, error) {
	spi, err := sa.env.Dataplane.AllocateSPI(ctx(), sa.Remote.Addr(), sa.Local.Addr())
	if err != nil {
		return nil, nil, err
	}
	c := &ChildSA{Config: cfg, State: ChildCreating, Mode: cfg.Mode, SPIIn: spi}
	if rekey != nil {
		c.ReqID = rekey.ReqID
	} else {
		c.ReqID = sa.env.NextReqID()
	}
	c.proposedTSi = sa.localSelectors(cfg)
	c.proposedTSr = resolveAll(cfg.RemoteTS, sa.Remote.Addr())
	sap := &ike.SA{}
	for i, p := range espProposals(cfg, rekey == nil && sa.State != StateEstablished) {
		sap.Proposals = append(sap.Proposals, p.ToWire(uint8(i+1), spiBytes(spi)))
	}
	var ps []ike.Payload
	if cfg.Mode == provider.Transport {
		ps = append(ps, &ike.Notify{NotifyType: ike.NotifyUseTransportMode})
	}
	ps = append(ps, sap, toWireTS(true, c.proposedTSi), toWireTS(false, c.proposedTSr))
	return c, ps, nil
}

// finishChildRequest completes a Child SA we asked for from the response.
// shared is the PFS secret (nil without).
func (sa *SA) finishChildRequest(c *ChildSA, ps []ike.Payload, shared []byte) bool {
	fail := func(class, reason string) bool {
		c.uninstall(sa.env)
		c.State = ChildFailed
		sa.LastFailure = reason
		sa.logger().Info("Child SA failed", "child", c.Config.Name, "reason", reason)
		sa.event(EventChildFailed, c.Config.Name, class, reason)
		return false
	}
	for _, p := range ps {
		if n, ok := p.(*ike.Notify); ok && n.NotifyType.IsError() {
			switch n.NotifyType {
			case ike.NotifyTsUnacceptable:
				return fail("ts", fmt.Sprintf("peer accepted none of our traffic selectors (ours: local %s, remote %s)",
					ts.FormatList(c.proposedTSi), ts.FormatList(c.proposedTSr)))
			case ike.NotifyNoProposalChosen:
				reason := fmt.Sprintf("peer refused the Child SA with NO_PROPOSAL_CHOSEN: none of our ESP proposals suited it (ours: %s)", proposalList(c.Config.ESPProposals))
				if c.Mode == provider.Transport {
					reason += ", or it requires tunnel mode"
				}
				reason += ", or it could not install the SA; its log says which"
				return fail("proposal", reason)
			case ike.NotifyFailedCpRequired:
				return fail("pool", "peer assigned us no virtual IP (FAILED_CP_REQUIRED): its address pool may be exhausted; its log names the pool")
			default:
				return fail("peer-error", fmt.Sprintf("peer refused the Child SA: %s", n.NotifyType))
			}
		}
	}
	sap := ike.Get[*ike.SA](ps)
	tsi, tsr := ike.GetTS(ps, true), ike.GetTS(ps, false)
	if sap == nil || tsi == nil || tsr == nil || len(sap.Proposals) != 1 {
		return fail("malformed", "peer's Child SA response lacks SA or traffic selectors")
	}
	suite, _, err := transform.Select(espProposals(c.Config, c.ni == nil), sap.Proposals, true)
	if err != nil {
		return fail("proposal", fmt.Sprintf("peer chose an ESP proposal we did not offer: %v", err))
	}
	spiOut, ok := spi32(sap.Proposals[0].SPI)
	if !ok {
		return fail("malformed", "peer's ESP SPI is not 4 bytes")
	}
	lts, rts := fromWireTS(tsi), fromWireTS(tsr)
	if !subsetOf(lts, c.proposedTSi) || !subsetOf(rts, c.proposedTSr) {
		return fail("ts", fmt.Sprintf("peer's traffic selectors (local %s, remote %s) are not within ours (local %s, remote %s)",
			ts.FormatList(lts), ts.FormatList(rts), ts.FormatList(c.proposedTSi), ts.FormatList(c.proposedTSr)))
	}
	transport := ike.FindNotify(ps, ike.NotifyUseTransportMode) != nil
	if c.Mode == provider.Transport && !transport {
		// Never fall back silently: tell the peer to drop its half.
		c.Suite, c.SPIOut = suite, spiOut
		sa.queueDeleteChildSPIs([]uint32{c.SPIIn})
		return fail("mode", fmt.Sprintf("child %q requires transport mode and the peer answered with tunnel mode", c.Config.Name))
	}
	c.Suite, c.SPIOut, c.LocalTS, c.RemoteTS = suite, spiOut, lts, rts
	if err := sa.installChild(c, shared); err != nil {
		return fail("dataplane", fmt.Sprintf("installing the Child SA failed: %v", err))
	}
	sa.childUp(c)
	return true
}

func subsetOf(got, offered []provider.TrafficSelector) bool {
	for _, g := range got {
		ok := false
		for _, o := range offered {
			if ts.Contains(o, g) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return len(got) > 0
}

// childRespond answers a Child SA request (in IKE_AUTH or CREATE_CHILD_SA).
// It returns the installed child (nil on refusal) and the payloads.
func (sa *SA) childRespond(ps []ike.Payload, cc *createChild) (*ChildSA, []ike.Payload) {
	c, out, inst := sa.childResponse(ps, cc)
	if inst == nil {
		return c, out
	}
	return sa.afterChildInstall(c, out, inst, inst.run(sa.env.Dataplane))
}

// refuseChild records why a Child SA request is refused and answers with n.
func (sa *SA) refuseChild(n ike.NotifyType, class, reason string) (*ChildSA, []ike.Payload) {
	sa.LastFailure = reason
	sa.logger().Info("refusing Child SA", "reason", reason)
	sa.event(EventChildFailed, "", class, reason)
	return nil, []ike.Payload{&ike.Notify{NotifyType: n}}
}

// afterChildInstall takes the outcome of the install childResponse
// prepared: the response payloads, or a refusal if the dataplane failed.
func (sa *SA) afterChildInstall(c *ChildSA, out []ike.Payload, inst *childInstall, err error) (*ChildSA, []ike.Payload) {
	inst.commit(c)
	if err != nil {
		c.uninstall(sa.env)
		return sa.refuseChild(ike.NotifyTemporaryFailure, "dataplane", fmt.Sprintf("installing the Child SA failed: %v", err))
	}
	return c, out
}

// childResponse chooses and keys the Child SA a request asks for and builds
// its response payloads, but leaves the install to the caller: inst, nil
// when the request is refused (c is then nil and out the refusal).
func (sa *SA) childResponse(ps []ike.Payload, cc *createChild) (c *ChildSA, out []ike.Payload, inst *childInstall) {
	refuse := func(n ike.NotifyType, class, reason string) (*ChildSA, []ike.Payload, *childInstall) {
		c, out := sa.refuseChild(n, class, reason)
		return c, out, nil
	}
	sap := ike.Get[*ike.SA](ps)
	tsi, tsr := fromWireTS(ike.GetTS(ps, true)), fromWireTS(ike.GetTS(ps, false))
	if sap == nil || len(tsi) == 0 || len(tsr) == 0 {
		return refuse(ike.NotifyInvalidSyntax, "malformed", "Child SA request lacks SA or traffic selectors")
	}
	// Behind a NAT the peer proposes its private address (RFC 7296
	// §2.23.1): a dynamic remote selector then stands for that address.
	peerAddr := sa.Remote.Addr()
	if sa.natRemote && tsi[0].Start == tsi[0].End {
		peerAddr = tsi[0].Start
	}
	var cfg *Child
	var lts, rts []provider.TrafficSelector
	for i := range sa.Conn.Children {
		c := &sa.Conn.Children[i]
		if cc != nil && cc.rekey != nil && cc.rekey.Config.Name != c.Name {
			continue
		}
		r := ts.Narrow(sa.remoteSelectors(c, peerAddr), tsi)
		l := ts.Narrow(resolveAll(c.LocalTS, sa.Local.Addr()), tsr)
		if len(r) > 0 && len(l) > 0 {
			cfg, lts, rts = c, l, r
			break
		}
	}
	if cfg == nil {
		var ours []string
		for _, cc := range sa.Conn.Children {
			ours = append(ours, fmt.Sprintf("%s: local %s, remote %s", cc.Name,
				ts.FormatList(resolveAll(cc.LocalTS, sa.Local.Addr())), ts.FormatList(resolveAll(cc.RemoteTS, sa.Remote.Addr()))))
		}
		return refuse(ike.NotifyTsUnacceptable, "ts", fmt.Sprintf("no child matches the peer's traffic selectors (peer: initiator %s, responder %s; ours: %v)",
			ts.FormatList(tsi), ts.FormatList(tsr), ours))
	}
	if reason := sa.vipRefusal(cfg); reason != "" {
		return refuse(ike.NotifyFailedCpRequired, "pool", fmt.Sprintf("child %q: no virtual IP for the peer: %s", cfg.Name, reason))
	}
	transport := ike.FindNotify(ps, ike.NotifyUseTransportMode) != nil
	if cfg.Mode == provider.Transport && !transport {
		return refuse(ike.NotifyNoProposalChosen, "mode", fmt.Sprintf("child %q requires transport mode and the peer asked for tunnel mode", cfg.Name))
	}
	mode := provider.Tunnel
	if cfg.Mode == provider.Transport && transport {
		mode = provider.Transport
	}
	theirs := sap.Proposals
	if cc == nil { // IKE_AUTH: a PFS group in a peer's proposal means nothing here
		theirs = withoutKEWire(theirs)
	}
	suite, num, err := transform.Select(espProposals(cfg, cc == nil), theirs, false)
	if err != nil {
		return refuse(ike.NotifyNoProposalChosen, "proposal", fmt.Sprintf("no ESP proposal in common for child %q: %v", cfg.Name, err))
	}
	var peerSPI []byte
	for _, p := range sap.Proposals {
		if p.Number == num {
			peerSPI = p.SPI
			break
		}
	}
	spiOut, ok := spi32(peerSPI)
	if !ok {
		return refuse(ike.NotifyInvalidSyntax, "malformed", "peer's ESP SPI is not 4 bytes")
	}
	var shared, kePub []byte
	if cc != nil && suite.KE != 0 {
		if cc.ke == nil || cc.ke.Group != suite.KE {
			sa.logger().Info("asking the peer for another PFS group", "group", suite.KE)
			return nil, []ike.Payload{&ike.Notify{NotifyType: ike.NotifyInvalidKePayload, Data: []byte{byte(suite.KE >> 8), byte(suite.KE)}}}, nil
		}
		if kePub, shared, err = transform.RespondKeyExchange(suite.KE, cc.ke.Data); err != nil {
			return refuse(ike.NotifyInvalidSyntax, "ke", fmt.Sprintf("peer's PFS key exchange data is invalid: %v", err))
		}
		defer clear(shared)
	}
	spiIn, err := sa.env.Dataplane.AllocateSPI(ctx(), sa.Remote.Addr(), sa.Local.Addr())
	if err != nil {
		return refuse(ike.NotifyTemporaryFailure, "dataplane", fmt.Sprintf("allocating an SPI failed: %v", err))
	}
	c = &ChildSA{Config: cfg, State: ChildCreating, Mode: mode, Suite: suite,
		SPIIn: spiIn, SPIOut: spiOut, LocalTS: lts, RemoteTS: rts}
	if cc != nil {
		c.ni, c.nr = cc.ni, cc.nr
		if cc.rekey != nil {
			c.rekeyOf, c.ReqID = cc.rekey, cc.rekey.ReqID
		}
	}
	if c.ReqID == 0 {
		c.ReqID = sa.env.NextReqID()
	}
	if inst, err = sa.childInstallRequest(c, shared); err != nil {
		return refuse(ike.NotifyTemporaryFailure, "dataplane", fmt.Sprintf("deriving the Child SA's keys failed: %v", err))
	}
	out = []ike.Payload{}
	if mode == provider.Transport {
		out = append(out, &ike.Notify{NotifyType: ike.NotifyUseTransportMode})
	}
	out = append(out, &ike.SA{Proposals: []ike.Proposal{{Number: num, Protocol: ike.ProtoESP, SPI: spiBytes(spiIn), Transforms: suite.Transforms()}}})
	if cc != nil {
		out = append(out, &ike.Nonce{Data: cc.nr})
		if kePub != nil {
			out = append(out, &ike.KeyExchange{Group: suite.KE, Data: kePub})
		}
	}
	out = append(out, toWireTS(true, rts), toWireTS(false, lts))
	if !sameSet(rts, tsi) || !sameSet(lts, tsr) {
		out = append(out, &ike.Notify{NotifyType: ike.NotifyAdditionalTsPossible})
	}
	return c, out, inst
}

func sameSet(a, b []provider.TrafficSelector) bool {
	return slices.EqualFunc(a, b, ts.Equal)
}

// installChild derives the keys and installs inbound SA, outbound SA, then
// the policies; key copies are zeroed once the dataplane has them.
func (sa *SA) installChild(c *ChildSA, shared []byte) error {
	inst, err := sa.childInstallRequest(c, shared)
	if err != nil {
		return err
	}
	err = inst.run(sa.env.Dataplane)
	inst.commit(c)
	return err
}

// childInstall is a Child SA's dataplane install: built under the
// engine's lock (childInstallRequest), run with or without it, and
// committed to the child under it.
type childInstall struct {
	in, out  *provider.ChildSA
	policies []*provider.Policy
	// What run got into the dataplane.
	installedIn, installedOut bool
	installed                 []*provider.Policy
}

// childInstallRequest derives c's keys and builds its install: inbound SA,
// outbound SA, then the policies.
func (sa *SA) childInstallRequest(c *ChildSA, shared []byte) (*childInstall, error) {
	ni, nr := sa.ni, sa.nr
	if c.ni != nil {
		ni, nr = c.ni, c.nr
	}
	keys, err := transform.ChildKeymat(sa.Suite, sa.keys.SKd, c.Suite, shared, ni, nr)
	if err != nil {
		return nil, err
	}
	defer keys.Zero()
	// Keys for data from the exchange's initiator come first (RFC 7296
	// §2.17): the IKE SA's initiator for the child of IKE_AUTH, whoever sent
	// the CREATE_CHILD_SA request otherwise.
	exchangeInitiator := sa.Initiator
	if c.ni != nil {
		exchangeInitiator = c.weInitiated
	}
	encIn, integIn, encOut, integOut := keys.EncrR, keys.IntegR, keys.EncrI, keys.IntegI
	if !exchangeInitiator {
		encIn, integIn, encOut, integOut = keys.EncrI, keys.IntegI, keys.EncrR, keys.IntegR
	}
	if c.Config.ReplayWindow == 0 {
		c.Config.ReplayWindow = 32
	}
	enc, integ := c.Suite.ESPAlgorithms()
	var encap *provider.UDPEncap
	if sa.natLocal || sa.natRemote {
		encap = &provider.UDPEncap{SrcPort: sa.Local.Port(), DstPort: sa.Remote.Port()}
	}
	soft, hard := childLifetimes(c.Config)
	remoteTS := sa.dataplaneRemoteTS(c)
	mk := func(inbound bool) *provider.ChildSA {
		x := &provider.ChildSA{ReqID: c.ReqID, Inbound: inbound, Mode: c.Mode, Encryption: enc, Integrity: integ,
			ESN: c.Suite.ESN, ReplayWindow: c.Config.ReplayWindow, LocalTS: c.LocalTS, RemoteTS: remoteTS, Soft: soft, Hard: hard}
		if inbound {
			x.SPI, x.Src, x.Dst = c.SPIIn, sa.Remote.Addr(), sa.Local.Addr()
			x.EncKey, x.IntegKey = slices.Clone(encIn), slices.Clone(integIn)
			if encap != nil {
				x.Encap = &provider.UDPEncap{SrcPort: encap.DstPort, DstPort: encap.SrcPort}
			}
		} else {
			x.SPI, x.Src, x.Dst = c.SPIOut, sa.Local.Addr(), sa.Remote.Addr()
			x.EncKey, x.IntegKey = slices.Clone(encOut), slices.Clone(integOut)
			x.Encap = encap
		}
		return x
	}
	c.inDst, c.outDst = sa.Local.Addr(), sa.Remote.Addr()
	inst := &childInstall{in: mk(true), out: mk(false)}
	// On a rekey the old SA's policies (same ReqID) pass to this one when it goes.
	if old := c.rekeyOf; old == nil || old.policies == nil {
		inst.policies = sa.childPolicies(c, remoteTS)
		if sa.env.ReleaseTrap != nil {
			sa.env.ReleaseTrap(sa.Conn, c.Config.Name)
		}
	}
	return inst, nil
}

// run makes the install's dataplane calls (one with a ChildInstaller, all
// or nothing) and zeroes the key copies.
func (ci *childInstall) run(dp provider.Dataplane) error {
	defer func() {
		for _, x := range []*provider.ChildSA{ci.in, ci.out} {
			clear(x.EncKey)
			clear(x.IntegKey)
		}
	}()
	if x, ok := dp.(provider.ChildInstaller); ok {
		if err := x.InstallChild(ctx(), []*provider.ChildSA{ci.in, ci.out}, ci.policies); err != nil {
			return err
		}
		ci.installedIn, ci.installedOut, ci.installed = true, true, ci.policies
		return nil
	}
	if err := dp.InstallSA(ctx(), ci.in); err != nil {
		return err
	}
	ci.installedIn = true
	if err := dp.InstallSA(ctx(), ci.out); err != nil {
		return err
	}
	ci.installedOut = true
	for _, p := range ci.policies {
		if err := dp.InstallPolicy(ctx(), p); err != nil {
			return err
		}
		ci.installed = append(ci.installed, p)
	}
	return nil
}

// commit records on c what run installed, so uninstall removes it.
func (ci *childInstall) commit(c *ChildSA) {
	c.installedIn = c.installedIn || ci.installedIn
	c.installedOut = c.installedOut || ci.installedOut
	c.policies = append(c.policies, ci.installed...)
}

// childPolicies are the policies of a new Child SA: out and in (and fwd in
// tunnel mode) for each pair of traffic selectors.
func (sa *SA) childPolicies(c *ChildSA, remoteTS []provider.TrafficSelector) []*provider.Policy {
	var out []*provider.Policy
	for _, l := range c.LocalTS {
		for _, r := range remoteTS {
			dirs := []provider.Direction{provider.Out, provider.In}
			if c.Mode == provider.Tunnel {
				dirs = append(dirs, provider.Fwd)
			}
			for _, d := range dirs {
				p := &provider.Policy{ReqID: c.ReqID, Dir: d, Action: provider.Protect, Local: l, Remote: r, Mode: c.Mode,
					TmplSrc: sa.Local.Addr(), TmplDst: sa.Remote.Addr()}
				if d != provider.Out {
					p.TmplSrc, p.TmplDst = sa.Remote.Addr(), sa.Local.Addr()
				}
				out = append(out, p)
			}
		}
	}
	return out
}

// childLifetimes are the dataplane's limits: at the soft one it raises
// SoftExpire (we rekey), at the hard one it drops the SA (HardExpire).
func childLifetimes(cfg *Child) (soft, hard provider.Lifetime) {
	hard = provider.Lifetime{Time: cfg.LifeTime, Bytes: hardLimit(cfg.RekeyBytes, cfg.LifeBytes),
		Packets: hardLimit(cfg.RekeyPackets, cfg.LifePackets)}
	soft = provider.Lifetime{Time: cfg.RekeyTime, Bytes: cfg.RekeyBytes, Packets: cfg.RekeyPackets}
	return soft, hard
}

// hardLimit leaves a rekey 10 % of the soft limit to finish when no hard
// limit is configured.
func hardLimit(soft, hard uint64) uint64 {
	if hard == 0 && soft > 0 {
		return soft + max(soft/10, 1)
	}
	return hard
}

func (sa *SA) childUp(c *ChildSA) {
	c.State = ChildInstalled
	c.Established = sa.env.Now()
	c.armLifetimes(sa.env, c.Established)
	sa.Children = append(sa.Children, c)
	sa.logger().Info("Child SA installed", "child", c.Config.Name, "spi_in", fmt.Sprintf("%08x", c.SPIIn),
		"spi_out", fmt.Sprintf("%08x", c.SPIOut), "mode", c.Mode, "proposal", c.Suite.String())
	sa.event(EventChildUp, c.Config.Name, "", "")
}

// uninstall removes policies, then the outbound and the inbound SA.
func (c *ChildSA) uninstall(env *Env) {
	for _, p := range c.policies {
		if err := env.Dataplane.DeletePolicy(ctx(), p); err != nil {
			env.Logger.Debug("deleting policy failed", "err", err)
		}
	}
	c.policies = nil
	if c.installedOut {
		env.Dataplane.DeleteSA(ctx(), provider.SAKey{Dst: c.outDst, SPI: c.SPIOut})
		c.installedOut = false
	}
	if c.installedIn {
		env.Dataplane.DeleteSA(ctx(), provider.SAKey{Dst: c.inDst, SPI: c.SPIIn})
		c.installedIn = false
	}
}

// FindChild returns the Child SA one of whose SAs has key (inbound: our
// SPI, outbound: the peer's), or nil.
func (sa *SA) FindChild(key provider.SAKey) *ChildSA {
	for _, c := range sa.Children {
		if (c.SPIIn == key.SPI && c.inDst == key.Dst) || (c.SPIOut == key.SPI && c.outDst == key.Dst) {
			return c
		}
	}
	return nil
}

// SAKeys returns the keys of the child's inbound and outbound SAs.
func (c *ChildSA) SAKeys() (in, out provider.SAKey) {
	return provider.SAKey{Dst: c.inDst, SPI: c.SPIIn}, provider.SAKey{Dst: c.outDst, SPI: c.SPIOut}
}

// DataplaneEvent handles a dataplane report about one of this SA's
// children: soft expiry and sequence exhaustion rekey it, hard expiry
// removes it (the SA is already gone in the dataplane).
func (sa *SA) DataplaneEvent(kind provider.EventKind, c *ChildSA) {
	switch kind {
	case provider.SoftExpire, provider.SeqExhausted:
		if c.State == ChildInstalled {
			if err := sa.startCreateChild(c.Config, c); err != nil {
				sa.logger().Info("rekey on dataplane request failed", "child", c.Config.Name, "err", err)
			}
		}
	case provider.HardExpire:
		sa.logger().Info("Child SA expired in the dataplane", "child", c.Config.Name)
		sa.deleteChild(c, "hard lifetime reached in the dataplane")
	}
}

// espProposals are cfg's ESP proposals as sent in an exchange: the child of
// IKE_AUTH carries no key exchange (RFC 7296 §1.2: its keys come from the
// IKE SA's), so PFS groups are left out there and used from the first
// CREATE_CHILD_SA rekey on.
func espProposals(cfg *Child, inIKEAuth bool) []transform.Proposal {
	if !inIKEAuth {
		return cfg.ESPProposals
	}
	out := make([]transform.Proposal, 0, len(cfg.ESPProposals))
	for _, p := range cfg.ESPProposals {
		q := transform.Proposal{Protocol: p.Protocol}
		for _, t := range p.Transforms {
			if !isKE(t.Type) {
				q.Transforms = append(q.Transforms, t)
			}
		}
		out = append(out, q)
	}
	return out
}

func withoutKEWire(ps []ike.Proposal) []ike.Proposal {
	out := make([]ike.Proposal, 0, len(ps))
	for _, p := range ps {
		q := p
		q.Transforms = nil
		for _, t := range p.Transforms {
			if !isKE(t.Type) {
				q.Transforms = append(q.Transforms, t)
			}
		}
		out = append(out, q)
	}
	return out
}

func isKE(t ike.TransformType) bool {
	return t == ike.TransformKE || (t >= ike.TransformADDKE1 && t <= ike.TransformADDKE7)
}

// dataplaneRemoteTS is the remote side of c's selectors as the dataplane
// must see them. In transport mode behind a NAT the peer negotiates its
// private address, but its packets arrive from (and replies go to) the NAT's
// public address, the IKE peer address: that address replaces the private
// one in what is installed (as strongSwan does; RFC 3948 §3.1.2 leaves the
// inner addresses to the implementation).
func (sa *SA) dataplaneRemoteTS(c *ChildSA) []provider.TrafficSelector {
	if c.Mode != provider.Transport || !sa.natRemote {
		return c.RemoteTS
	}
	peer := sa.Remote.Addr()
	out := make([]provider.TrafficSelector, len(c.RemoteTS))
	for i, t := range c.RemoteTS {
		if t.Start == t.End && t.Start != peer && t.Start.Is4() == peer.Is4() {
			t.Start, t.End = peer, peer
		}
		out[i] = t
	}
	return out
}
