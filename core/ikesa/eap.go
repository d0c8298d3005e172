package ikesa

import (
	"crypto/hmac"
	"fmt"
	"strings"

	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/provider"
)

// EAP inside IKE_AUTH (RFC 7296 §2.16, RFC 5998). The initiator (EAP
// client) leaves AUTH out of its first IKE_AUTH request; the responder
// (EAP server) answers with its ID, certificates, AUTH (left out when both
// sides agreed on EAP-only authentication) and the first EAP request. EAP
// messages then travel in IKE_AUTH exchanges until the server's Success;
// finally each side sends an AUTH computed like a shared-key AUTH with the
// method's MSK (or SK_pi/SK_pr for methods without one) as the key:
//
//	I -> R  IDi, [IDr], SA, TSi, TSr              (no AUTH)
//	I <- R  IDr, [CERT], [AUTH], EAP(Request)
//	I -> R  EAP(Response) ...                       (as many rounds as the method needs)
//	I <- R  EAP(Success)
//	I -> R  AUTH(MSK)
//	I <- R  AUTH(MSK), SA, TSi, TSr
//
// Steps of the EAP method run in the auth plugin and may wait on a RADIUS
// server, so they go through Env.Offload: the engine runs them without
// holding its lock and applies the result afterwards.

// IsEAP reports whether an auth method value names EAP.
func IsEAP(method string) bool { return method == "eap" || strings.HasPrefix(method, "eap-") }

// eapState is one EAP conversation of this SA.
type eapState struct {
	server  bool
	eapOnly bool // RFC 5998: the responder sends no AUTH of its own
	session provider.EAPSession
	busy    bool // a step is running off the engine lock
	// The ID payloads' signed bodies, which the final AUTHs cover.
	idiBody, idrBody []byte
	// The responder keeps the initiator's first request: its SA, TS, CP
	// and notifies are answered only in the last exchange.
	firstRequest []ike.Payload
	done         bool
	msk          []byte
	peerMobike   bool
}

// close ends the session and zeroes the MSK. A session in use by an
// offloaded step is closed when that step comes back.
func (e *eapState) close() {
	clear(e.msk)
	e.msk = nil
	if e.session != nil && !e.busy {
		e.session.Close()
		e.session = nil
	}
}

func (sa *SA) eapAuthenticator(method string) (provider.EAPAuthenticator, error) {
	a, ok := sa.env.Auth[method]
	if !ok {
		return nil, fmt.Errorf("no authenticator for method %q (is the eap auth plugin running?)", method)
	}
	ea, ok := a.(provider.EAPAuthenticator)
	if !ok {
		return nil, fmt.Errorf("the authenticator for %q does not do EAP", method)
	}
	return ea, nil
}

// mskAuth is the AUTH data of the side named by initiatorSide after EAP:
// prf(prf(key, "Key Pad for IKEv2"), <SignedOctets>).
func (sa *SA) mskAuth(initiatorSide bool, idBody []byte) []byte {
	key := sa.eap.msk
	if len(key) == 0 {
		key = sa.keys.SKpr
		if initiatorSide {
			key = sa.keys.SKpi
		}
	}
	pad := sa.Suite.ComputePRF(key, []byte("Key Pad for IKEv2"))
	defer clear(pad)
	return sa.Suite.ComputePRF(pad, sa.signedOctets(initiatorSide, idBody))
}

// eapPayload wraps a packet from the EAP method, refusing one whose header
// does not describe it.
func eapPayload(msg []byte) (*ike.EAP, error) {
	if len(msg) < 4 || int(msg[2])<<8|int(msg[3]) != len(msg) || msg[0] < 1 || msg[0] > 4 {
		return nil, fmt.Errorf("the EAP method produced a malformed packet (%d bytes)", len(msg))
	}
	return &ike.EAP{Code: msg[0], Identifier: msg[1], Data: msg}, nil
}

// eapStep runs one step of the conversation off the engine lock and hands
// its result to then, back on the SA.
func (sa *SA) eapStep(in []byte, then func(step *provider.EAPStep, err error)) {
	st := sa.eap
	st.busy = true
	var step *provider.EAPStep
	var err error
	sa.env.offload(sa, func() {
		step, err = st.session.Step(ctx(), in)
	}, func() {
		st.busy = false
		if sa.dead || sa.eap != st {
			st.close()
			return
		}
		if err == nil && step == nil {
			err = fmt.Errorf("the EAP method returned nothing")
		}
		then(step, err)
	})
}

// --- initiator: EAP client ---

// handleEAPFirstResponse checks the responder's identity (and AUTH, unless
// EAP-only) and answers its first EAP request.
func (sa *SA) handleEAPFirstResponse(ps []ike.Payload) error {
	if ike.FindNotify(ps, ike.NotifyAuthenticationFailed) != nil {
		return sa.eapClientFail("peer rejected our IKE_AUTH request (AUTHENTICATION_FAILED); check both sides' identities and that the peer expects EAP")
	}
	st := sa.eap
	idr := ike.GetID(ps, false)
	e := ike.Get[*ike.EAP](ps)
	if idr == nil || e == nil {
		return sa.eapClientFail("peer's IKE_AUTH response has no ID or EAP payload: it does not run EAP with us")
	}
	if ike.Get[*ike.Authentication](ps) != nil {
		// The server's AUTH is checked before we say anything in EAP.
		sa.verifyPeerThen(ps, false, func(class, reason string) {
			if class != "" {
				sa.deleteUnestablished()
				sa.eapClientFailClass(class, reason)
				return
			}
			sa.startEAPClient(ps, idr, e)
		})
		return nil
	}
	if !st.eapOnly {
		return sa.eapClientFail("peer sent no AUTH before EAP, but EAP-only authentication (RFC 5998) is not configured: set remote auth to the EAP method to allow it")
	} else if reason := sa.remoteIDMismatch(idr); reason != "" {
		return sa.eapClientFail(reason)
	}
	sa.startEAPClient(ps, idr, e)
	return nil
}

// startEAPClient begins our side of the conversation with the server's
// first request e, once its identity (and AUTH) checked out.
func (sa *SA) startEAPClient(ps []ike.Payload, idr *ike.Identification, e *ike.EAP) {
	st := sa.eap
	st.idrBody = idr.SignedBody()
	st.peerMobike = ike.FindNotify(ps, ike.NotifyMobikeSupported) != nil
	ea, err := sa.eapAuthenticator(sa.Conn.Local.Method)
	if err != nil {
		sa.eapClientFail(err.Error())
		return
	}
	req := &provider.EAPRequest{Connection: sa.Conn.Name, Method: sa.Conn.Local.Method, LocalID: sa.Conn.Local.ID,
		RemoteID: provider.Identity{Type: uint8(idr.IDType), Data: idr.Data}}
	first := e.Data
	st.busy = true
	var session provider.EAPSession
	sa.env.offload(sa, func() {
		session, err = ea.StartEAP(ctx(), req)
	}, func() {
		st.busy = false
		if err != nil {
			sa.eapClientFail(fmt.Sprintf("starting EAP failed: %v", err))
			return
		}
		st.session = session
		if sa.dead || sa.eap != st {
			st.close()
			return
		}
		sa.eapClientStep(first)
	})
}

// eapClientStep answers one EAP packet from the server.
func (sa *SA) eapClientStep(in []byte) {
	sa.eapStep(in, func(step *provider.EAPStep, err error) {
		switch {
		case err != nil:
			sa.eapClientFail(fmt.Sprintf("EAP (%s) failed: %v", sa.Conn.Local.Method, err))
		case step.Done && !step.Success:
			sa.eapClientFail("EAP authentication failed: " + failureOr(step.Reason, "the server sent EAP-Failure"))
		case step.Done:
			sa.eap.done, sa.eap.msk = true, step.MSK
			auth := sa.mskAuth(true, sa.eap.idiBody)
			sa.queueRequest(&request{exchange: ike.IKE_AUTH,
				payloads:   []ike.Payload{&ike.Authentication{Method: ike.AuthMethod(2), Data: auth}},
				onResponse: sa.handleEAPFinalResponse})
		default:
			p, err := eapPayload(step.Message)
			if err != nil {
				sa.eapClientFail(err.Error())
				return
			}
			sa.queueRequest(&request{exchange: ike.IKE_AUTH, payloads: []ike.Payload{p}, onResponse: sa.handleEAPResponse})
		}
	})
}

func (sa *SA) handleEAPResponse(ps []ike.Payload) error {
	if ike.FindNotify(ps, ike.NotifyAuthenticationFailed) != nil {
		return sa.eapClientFail("peer rejected our EAP authentication (AUTHENTICATION_FAILED)")
	}
	e := ike.Get[*ike.EAP](ps)
	if e == nil {
		return sa.eapClientFail("peer's IKE_AUTH response in the EAP conversation has no EAP payload")
	}
	sa.eapClientStep(e.Data)
	return nil
}

// handleEAPFinalResponse checks the responder's MSK AUTH and completes
// the IKE SA and its first child.
func (sa *SA) handleEAPFinalResponse(ps []ike.Payload) error {
	st := sa.eap
	if ike.FindNotify(ps, ike.NotifyAuthenticationFailed) != nil {
		return sa.eapClientFail("peer refused our authentication after EAP succeeded (AUTHENTICATION_FAILED): its policy does not accept us (identity, group) or our EAP key differs from its own; see the peer's log")
	}
	a := ike.Get[*ike.Authentication](ps)
	if a == nil || a.Method != 2 || !hmac.Equal(a.Data, sa.mskAuth(false, st.idrBody)) {
		sa.deleteUnestablished()
		return sa.eapClientFail("peer's AUTH after EAP did not verify: the EAP keys (MSK) differ")
	}
	if !st.peerMobike {
		st.peerMobike = ike.FindNotify(ps, ike.NotifyMobikeSupported) != nil
	}
	ex := sa.authEx
	sa.authEx = nil
	sa.peerMobike = st.peerMobike
	st.close()
	sa.initiatorAuthComplete(ex, ps)
	return nil
}

func (sa *SA) eapClientFail(reason string) error { return sa.eapClientFailClass("auth", reason) }

func (sa *SA) eapClientFailClass(class, reason string) error {
	if ex := sa.authEx; ex != nil && ex.child != nil {
		ex.child.uninstall(sa.env)
	}
	sa.authEx = nil
	if sa.eap != nil {
		sa.eap.close()
	}
	sa.fail(class, reason)
	return errFatal
}

// deleteUnestablished tells the peer that we do not accept the IKE SA.
func (sa *SA) deleteUnestablished() {
	sa.queueRequest(&request{exchange: ike.INFORMATIONAL, payloads: []ike.Payload{&ike.Delete{Protocol: ike.ProtoIKE}},
		onResponse: func([]ike.Payload) error { return nil }})
}

// --- responder: EAP server ---

// startEAPServer answers an IKE_AUTH request without AUTH from a peer that
// must authenticate with EAP: our identity and AUTH plus the first EAP
// request.
func (sa *SA) startEAPServer(id uint32, ps []ike.Payload) {
	reject := func(class, reason string) { sa.refuseAuth(id, class, reason) }
	idi := ike.GetID(ps, true)
	if idi == nil {
		reject("malformed", "peer's IKE_AUTH lacks an ID")
		return
	}
	if reason := sa.remoteIDMismatch(idi); reason != "" {
		reject("auth", reason)
		return
	}
	local := sa.Conn.Local
	st := &eapState{server: true, idiBody: idi.SignedBody(), firstRequest: ps,
		peerMobike: ike.FindNotify(ps, ike.NotifyMobikeSupported) != nil}
	if IsEAP(local.Method) {
		// We have no AUTH of our own: only RFC 5998 EAP-only works.
		if ike.FindNotify(ps, ike.NotifyEapOnlyAuthentication) == nil {
			reject("auth", "peer did not offer EAP-only authentication (RFC 5998) and our local auth is EAP: configure a certificate (local auth = \"pubkey\") or let the client allow EAP-only")
			return
		}
		st.eapOnly = true
	}
	ea, err := sa.eapAuthenticator(sa.Conn.Remote.Method)
	if err != nil {
		reject("auth", err.Error())
		return
	}
	idr := idPayload(false, local.ID)
	st.idrBody = idr.SignedBody()
	var auth provider.Authenticator
	var makeReq *provider.AuthRequest
	if !st.eapOnly {
		var ok bool
		if auth, ok = sa.env.Auth[local.Method]; !ok {
			reject("auth", fmt.Sprintf("no authenticator for method %q", local.Method))
			return
		}
		makeReq = sa.authRequest(provider.Responder, local.ID,
			provider.Identity{Type: uint8(idi.IDType), Data: idi.Data}, sa.signedOctets(false, st.idrBody))
	}
	sa.eap = st
	req := &provider.EAPRequest{Connection: sa.Conn.Name, Method: sa.Conn.Remote.Method, Server: true,
		LocalID: local.ID, RemoteID: provider.Identity{Type: uint8(idi.IDType), Data: idi.Data}}
	st.busy = true
	var session provider.EAPSession
	var step *provider.EAPStep
	var res *provider.AuthResult
	var makeErr error
	sa.env.offload(sa, func() {
		if auth != nil {
			if res, makeErr = auth.Make(ctx(), makeReq); makeErr != nil {
				return
			}
		}
		if session, err = ea.StartEAP(ctx(), req); err == nil {
			step, err = session.Step(ctx(), nil)
		}
	}, func() {
		st.busy = false
		st.session = session
		if sa.dead || sa.eap != st {
			st.close()
			return
		}
		if makeErr != nil {
			st.close()
			reject("auth", fmt.Sprintf("making our AUTH failed: %v", makeErr))
			return
		}
		if err == nil && (step == nil || step.Done) {
			err = fmt.Errorf("the EAP method ended before it began")
		}
		var p *ike.EAP
		if err == nil {
			p, err = eapPayload(step.Message)
		}
		if err != nil {
			st.close()
			reject("auth", fmt.Sprintf("starting EAP (%s) failed: %v", sa.Conn.Remote.Method, err))
			return
		}
		out := []ike.Payload{idr}
		if res != nil {
			for _, c := range res.Certs {
				out = append(out, &ike.Certificate{Encoding: 4, Data: c})
			}
			out = append(out, &ike.Authentication{Method: ike.AuthMethod(res.Method), Data: res.Data})
		}
		sa.respond(ike.IKE_AUTH, id, append(out, p))
	})
}

// handleEAPRequest continues the server's conversation, and once it has
// succeeded checks the initiator's MSK AUTH and completes the IKE SA.
func (sa *SA) handleEAPRequest(id uint32, ps []ike.Payload) {
	st := sa.eap
	// (fail destroys the SA, which closes st)
	reject := func(class, reason string) { sa.refuseAuth(id, class, reason) }
	if st.busy {
		sa.env.Stats.Drop("eap-busy")
		return
	}
	if !st.done {
		e := ike.Get[*ike.EAP](ps)
		if e == nil {
			reject("malformed", "peer's IKE_AUTH request in the EAP conversation has no EAP payload")
			return
		}
		sa.eapStep(e.Data, func(step *provider.EAPStep, err error) {
			if err != nil {
				reject("auth", fmt.Sprintf("EAP (%s) failed: %v", sa.Conn.Remote.Method, err))
				return
			}
			p, perr := eapPayload(step.Message)
			if perr != nil {
				reject("auth", perr.Error())
				return
			}
			sa.respond(ike.IKE_AUTH, id, []ike.Payload{p})
			if !step.Done {
				return
			}
			if !step.Success {
				st.close()
				who := string(step.Identity)
				if who == "" {
					who = "the peer"
				}
				sa.fail("auth", fmt.Sprintf("EAP authentication of %s failed: %s", who, failureOr(step.Reason, "EAP-Failure")))
				return
			}
			st.done, st.msk = true, step.MSK
			if len(step.Identity) > 0 {
				sa.logger().Info("EAP authentication succeeded", "eap_id", string(step.Identity))
			}
		})
		return
	}
	a := ike.Get[*ike.Authentication](ps)
	if a == nil || a.Method != 2 || !hmac.Equal(a.Data, sa.mskAuth(true, st.idiBody)) {
		reject("auth", "peer's AUTH after EAP did not verify: the EAP keys (MSK) differ")
		return
	}
	out := []ike.Payload{&ike.Authentication{Method: ike.AuthMethod(2), Data: sa.mskAuth(false, st.idrBody)}}
	first := st.firstRequest
	st.close()
	st.firstRequest = nil
	sa.peerMobike = st.peerMobike
	sa.responderAuthComplete(id, first, out)
}

func failureOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
