package ikesa

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/provider"
)

// authState is the initiator's IKE_AUTH in progress.
type authState struct {
	child *ChildSA
}

// signedOctets builds RFC 7296 §2.15's octets for the side that sent msg:
// its IKE_SA_INIT message | the other side's nonce | prf(SK_px, ID').
func (sa *SA) signedOctets(initiatorSide bool, idBody []byte) []byte {
	msg, nonce, skp := sa.initI, sa.nr, sa.keys.SKpi
	if !initiatorSide {
		msg, nonce, skp = sa.initR, sa.ni, sa.keys.SKpr
	}
	mac := sa.Suite.ComputePRF(skp, idBody)
	out := make([]byte, 0, len(msg)+len(nonce)+len(mac))
	return append(append(append(append(out, msg...), nonce...), mac...), sa.intAuthSuffix()...)
}

func (sa *SA) authRequest(role provider.Role, local, remote provider.Identity, octets []byte) *provider.AuthRequest {
	return &provider.AuthRequest{Connection: sa.Conn.Name, Role: role, LocalID: local, RemoteID: remote,
		PRF: sa.Suite.PRF, SignedOctets: octets, SignatureHashes: sa.peerSigHashes}
}

func idPayload(initiator bool, id provider.Identity) *ike.Identification {
	return &ike.Identification{Initiator: initiator, IDType: ike.IDType(id.Type), Data: id.Data}
}

// startAuth sends the IKE_AUTH request with the first Child SA. Making
// our AUTH may wait on a keystore (a signature in Vault or an HSM), so it
// runs through Env.Offload.
func (sa *SA) startAuth(childName string) {
	local, remote := sa.Conn.Local, sa.Conn.Remote
	idi := idPayload(true, local.ID)
	sa.authMID = sa.nextReqID
	if sa.inflight != nil || len(sa.queue) > 0 {
		sa.authMID += uint32(len(sa.queue)) + 1
	}
	if IsEAP(local.Method) {
		// EAP client: no AUTH until the conversation has made its key (eap.go).
		sa.eap = &eapState{idiBody: idi.SignedBody(), eapOnly: IsEAP(remote.Method)}
		sa.sendAuthRequest(childName, idi, &provider.AuthResult{}, sa.handleEAPFirstResponse)
		return
	}
	auth, ok := sa.env.Auth[local.Method]
	if !ok {
		sa.fail("auth", fmt.Sprintf("no authenticator for method %q", local.Method))
		return
	}
	if !sa.ppkStart() {
		return
	}
	req := sa.authRequest(provider.Initiator, local.ID, remote.ID, sa.signedOctets(true, idi.SignedBody()))
	sa.noPPKAuthRequest(req, idi)
	var res *provider.AuthResult
	var err error
	sa.env.offload(sa, func() {
		res, err = auth.Make(ctx(), req)
		if err == nil {
			err = sa.makeNoPPKAuth(auth)
		}
	}, func() {
		switch {
		case sa.dead:
		case err != nil:
			sa.fail("auth", fmt.Sprintf("making our AUTH failed: %v", err))
		default:
			sa.sendAuthRequest(childName, idi, res, sa.handleAuthResponse)
		}
	})
}

// sendAuthRequest queues the first IKE_AUTH request: our ID, certificates
// and AUTH (none for an EAP client), and the first child's proposal.
func (sa *SA) sendAuthRequest(childName string, idi *ike.Identification, res *provider.AuthResult, onResponse func([]ike.Payload) error) {
	remote := sa.Conn.Remote
	ps := []ike.Payload{idi}
	for _, c := range res.Certs {
		ps = append(ps, &ike.Certificate{Encoding: 4, Data: c})
	}
	ps = append(ps, sa.certReq()...)
	if len(remote.ID.Data) > 0 {
		ps = append(ps, idPayload(false, remote.ID))
	}
	if sa.eap == nil {
		ps = append(ps, &ike.Authentication{Method: ike.AuthMethod(res.Method), Data: res.Data})
		ps = append(ps, sa.ppkAuthNotifies()...)
	} else if sa.eap.eapOnly {
		ps = append(ps, &ike.Notify{NotifyType: ike.NotifyEapOnlyAuthentication})
	}
	ps = append(ps, &ike.Notify{NotifyType: ike.NotifyInitialContact})
	if sa.Conn.Mobike {
		ps = append(ps, &ike.Notify{NotifyType: ike.NotifyMobikeSupported})
	}
	sa.authEx = &authState{}
	if cfg := sa.childConfig(childName); cfg != nil {
		c, cps, err := sa.childRequest(cfg, nil)
		if err != nil {
			sa.fail("dataplane", fmt.Sprintf("allocating an SPI failed: %v", err))
			return
		}
		sa.authEx.child = c
		ps = append(ps, cps...)
	}
	ps = append(ps, sa.cpRequest()...)
	sa.queueRequest(&request{exchange: ike.IKE_AUTH, payloads: ps, onResponse: onResponse})
}

func (sa *SA) childConfig(name string) *Child {
	for i := range sa.Conn.Children {
		if name == "" || sa.Conn.Children[i].Name == name {
			return &sa.Conn.Children[i]
		}
	}
	return nil
}

// peerCheck is a prepared check of the peer's AUTH: the request is built
// on the SA, and Verify, which may fetch OCSP answers or CRLs, runs through
// Env.Offload.
type peerCheck struct {
	auth   provider.Authenticator
	req    *provider.AuthRequest
	method ike.AuthMethod
}

// preparePeerCheck checks the peer's ID and prepares the check of its AUTH.
func (sa *SA) preparePeerCheck(ps []ike.Payload, peerIsInitiator bool) (_ *peerCheck, class, reason string) {
	id := ike.GetID(ps, peerIsInitiator)
	a := ike.Get[*ike.Authentication](ps)
	if id == nil || a == nil {
		return nil, "malformed", "peer's IKE_AUTH lacks ID or AUTH"
	}
	if reason := sa.remoteIDMismatch(id); reason != "" {
		return nil, "auth", reason
	}
	auth, ok := sa.env.Auth[sa.Conn.Remote.Method]
	if !ok {
		return nil, "auth", fmt.Sprintf("no authenticator for method %q", sa.Conn.Remote.Method)
	}
	role := provider.Responder
	if peerIsInitiator {
		role = provider.Initiator
	}
	req := sa.authRequest(role, sa.Conn.Local.ID, provider.Identity{Type: uint8(id.IDType), Data: id.Data},
		sa.signedOctets(peerIsInitiator, id.SignedBody()))
	req.Method, req.Data = uint8(a.Method), a.Data
	for _, p := range ps {
		if c, ok := p.(*ike.Certificate); ok {
			req.Certs = append(req.Certs, c.Data)
		}
	}
	return &peerCheck{auth: auth, req: req, method: a.Method}, "", ""
}

func (c *peerCheck) run() (class, reason string) {
	if err := c.auth.Verify(ctx(), c.req); err != nil {
		return "auth", fmt.Sprintf("peer's AUTH (%s) did not verify: %v", c.method, err)
	}
	return "", ""
}

// verifyPeerThen checks the peer's ID and AUTH off the engine lock and
// hands the outcome to then (not called if the SA died meanwhile).
func (sa *SA) verifyPeerThen(ps []ike.Payload, peerIsInitiator bool, then func(class, reason string)) {
	check, class, reason := sa.preparePeerCheck(ps, peerIsInitiator)
	if check == nil {
		then(class, reason)
		return
	}
	sa.env.offload(sa, func() {
		class, reason = check.run()
	}, func() {
		if !sa.dead {
			then(class, reason)
		}
	})
}

func (sa *SA) handleAuthResponse(ps []ike.Payload) error {
	ex := sa.authEx
	sa.authEx = nil
	if n := ike.FindNotify(ps, ike.NotifyAuthenticationFailed); n != nil {
		if ex.child != nil {
			ex.child.uninstall(sa.env)
		}
		sa.fail("auth", "peer rejected our authentication (AUTHENTICATION_FAILED); its log says why: identities or secrets that do not match, a certificate it does not trust, or one of its plugins unavailable")
		return errFatal
	}
	sa.ppkAuthResponse(ps)
	sa.verifyPeerThen(ps, false, func(class, reason string) {
		if class != "" {
			if ex.child != nil {
				ex.child.uninstall(sa.env)
			}
			// The IKE SA is not established from our side: tell the peer.
			sa.deleteUnestablished()
			sa.fail(class, reason)
			return
		}
		sa.peerMobike = ike.FindNotify(ps, ike.NotifyMobikeSupported) != nil
		sa.initiatorAuthComplete(ex, ps)
	})
	return nil
}

// initiatorAuthComplete establishes the IKE SA from the peer's last
// IKE_AUTH response ps, after its AUTH verified, and sets up the first
// child from it.
func (sa *SA) initiatorAuthComplete(ex *authState, ps []ike.Payload) {
	sa.cpReply(ps)
	sa.established()
	if ex != nil && ex.child != nil {
		sa.finishChildRequest(ex.child, ps, nil)
	}
}

func (sa *SA) established() {
	sa.State = StateEstablished
	sa.Established = sa.env.Now()
	sa.env.Stats.Handshakes["ok"]++
	sa.armDPD()
	sa.armRekey()
	sa.armReauth()
	sa.logger().Info("IKE SA established", "proposal", sa.Suite.String(), "remote", sa.Remote)
	sa.event(EventUp, "", "", "")
}

func (sa *SA) handleAuthRequest(id uint32, ps []ike.Payload) {
	if sa.State != StateConnecting {
		sa.respond(ike.IKE_AUTH, id, []ike.Payload{&ike.Notify{NotifyType: ike.NotifyInvalidSyntax}})
		return
	}
	if sa.eap != nil {
		sa.handleEAPRequest(id, ps)
		return
	}
	sa.selectConn(ps)
	if ike.Get[*ike.Authentication](ps) == nil && IsEAP(sa.Conn.Remote.Method) {
		sa.startEAPServer(id, ps)
		return
	}
	reject := func(class, reason string) { sa.refuseAuth(id, class, reason) }
	if ps = sa.ppkResponder(ps, reject); ps == nil {
		return
	}
	check, class, reason := sa.preparePeerCheck(ps, true)
	if check == nil {
		reject(class, reason)
		return
	}
	local := sa.Conn.Local
	peerID := ike.GetID(ps, true)
	idr := idPayload(false, local.ID)
	auth, ok := sa.env.Auth[local.Method]
	if !ok {
		reject("auth", fmt.Sprintf("no authenticator for method %q", local.Method))
		return
	}
	makeReq := sa.authRequest(provider.Responder, local.ID,
		provider.Identity{Type: uint8(peerID.IDType), Data: slices.Clone(peerID.Data)}, sa.signedOctets(false, idr.SignedBody()))
	// Verify (OCSP, CRLs) and Make (a keystore signature) may wait: they
	// run off the engine's lock, one after the other.
	var res *provider.AuthResult
	var err error
	sa.env.offload(sa, func() {
		if class, reason = check.run(); class == "" {
			res, err = auth.Make(ctx(), makeReq)
		}
	}, func() {
		switch {
		case sa.dead:
		case class != "":
			reject(class, reason)
		case err != nil:
			reject("auth", fmt.Sprintf("making our AUTH failed: %v", err))
		default:
			out := []ike.Payload{idr}
			for _, c := range res.Certs {
				out = append(out, &ike.Certificate{Encoding: 4, Data: c})
			}
			out = append(out, &ike.Authentication{Method: ike.AuthMethod(res.Method), Data: res.Data})
			sa.peerMobike = ike.FindNotify(ps, ike.NotifyMobikeSupported) != nil
			sa.responderAuthComplete(id, ps, out)
		}
	})
}

// responderAuthComplete sends the last IKE_AUTH response (out: our AUTH and
// what precedes it) with the first child requested in req, the initiator's
// first IKE_AUTH request, and establishes the IKE SA.
func (sa *SA) responderAuthComplete(id uint32, req, out []ike.Payload) {
	if sa.Conn.Mobike {
		out = append(out, &ike.Notify{NotifyType: ike.NotifyMobikeSupported})
	} else {
		sa.peerMobike = false
	}
	out = append(out, sa.cpRespond(req)...)
	out = append(out, sa.ppkResponse()...)
	finish := func(child *ChildSA, cps []ike.Payload) {
		sa.respond(ike.IKE_AUTH, id, append(out, cps...))
		sa.established()
		if child != nil {
			sa.childUp(child)
		}
	}
	if ike.Get[*ike.SA](req) == nil {
		finish(nil, nil)
		return
	}
	child, cps, inst := sa.childResponse(req, nil)
	if inst == nil {
		finish(child, cps)
		return
	}
	// The install is a dataplane plugin round trip: like the AUTH check it
	// runs off the engine's lock, and the response goes out once the
	// inbound SA is in place.
	var err error
	sa.env.offload(sa, func() {
		err = inst.run(sa.env.Dataplane)
	}, func() {
		if sa.dead {
			inst.commit(child)
			child.uninstall(sa.env)
			return
		}
		finish(sa.afterChildInstall(child, cps, inst, err))
	})
}

// selectConn switches a responder to the candidate connection that matches
// the peer's IDi (and IDr, if sent) best: an exact remote identity beats
// an unset one; a configuration with a different identity never matches.
func (sa *SA) selectConn(ps []ike.Payload) {
	if sa.env.Candidates == nil {
		return
	}
	idi, idr := ike.GetID(ps, true), ike.GetID(ps, false)
	if idi == nil {
		return
	}
	best, bestScore := sa.Conn, -1
	for _, c := range sa.env.Candidates(sa.Remote.Addr()) {
		score := 0
		if len(c.Remote.ID.Data) > 0 {
			if !matchesID(c.Remote.ID, idi) {
				continue
			}
			score += 2
		}
		if idr != nil && len(c.Local.ID.Data) > 0 {
			if !matchesID(c.Local.ID, idr) {
				continue
			}
			score++
		}
		if score > bestScore {
			best, bestScore = c, score
		}
	}
	if best != sa.Conn {
		sa.logger().Debug("switching connection by identity", "to", best.Name)
		sa.Conn = best
		sa.log = sa.env.Logger.With("conn", best.Name)
	}
}

// matchesID reports whether id is the configured identity want; an unset
// want matches any peer.
func matchesID(want provider.Identity, id *ike.Identification) bool {
	return len(want.Data) == 0 || (uint8(id.IDType) == want.Type && bytes.Equal(id.Data, want.Data))
}

// remoteIDMismatch says why id is not the peer this connection is for, or
// "" when it is.
func (sa *SA) remoteIDMismatch(id *ike.Identification) string {
	if want := sa.Conn.Remote.ID; !matchesID(want, id) {
		return fmt.Sprintf("peer identity %s %q does not match the configured remote identity %q", id.IDType, id.Data, want.Data)
	}
	return ""
}

// refuseAuth answers the peer's IKE_AUTH request id with
// AUTHENTICATION_FAILED and ends the SA with the reason.
func (sa *SA) refuseAuth(id uint32, class, reason string) {
	sa.respond(ike.IKE_AUTH, id, []ike.Payload{&ike.Notify{NotifyType: ike.NotifyAuthenticationFailed}})
	sa.fail(class, reason)
}
