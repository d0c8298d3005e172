package ikesa

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/provider"
)

// Post-quantum preshared keys (RFC 8784). Both sides say USE_PPK in
// IKE_SA_INIT; the initiator names its PPK in IKE_AUTH (PPK_IDENTITY) and
// computes AUTH with SK_pi, SK_pr and SK_d mixed with the PPK (§3):
//
//	SK_d = prf+(PPK, SK_d'), SK_pi = prf+(PPK, SK_pi'), SK_pr = prf+(PPK, SK_pr')
//
// Unless the PPK is required it also sends NO_PPK_AUTH, AUTH made with the
// unmixed keys, which a responder without that PPK verifies instead. A
// responder that used the PPK says so with an empty PPK_IDENTITY.

// ppkIDFixed is the PPK_ID type strongSwan and libreswan send (§5.1).
const ppkIDFixed = 2

type ppkState struct {
	// peer: the peer sent USE_PPK in IKE_SA_INIT; offered: so did we
	peer, offered bool
	// mixed: our keys are mixed with the PPK; used: the IKE SA's keys are
	mixed, used bool
	// orig are the unmixed SK_d, SK_pi, SK_pr, kept until the peer's
	// IKE_AUTH says whether it used the PPK (initiator)
	orig [3][]byte
	// noPPK is the initiator's NO_PPK_AUTH request and its answer
	noPPK    *provider.AuthRequest
	noPPKRes *provider.AuthResult
}

// PPK reports whether the IKE SA's keys are mixed with a PPK.
func (sa *SA) PPK() bool { return sa.ppk.used }

// ppkInitNotify is USE_PPK for IKE_SA_INIT: from an initiator with a PPK,
// from a responder whose peer offered it and which has a PPK for one of the
// connections the peer may be using.
func (sa *SA) ppkInitNotify() []ike.Payload {
	want := sa.Conn.PPKID != ""
	if !sa.Initiator {
		want = false
		if sa.ppk.peer {
			for _, c := range sa.candidates() {
				want = want || c.PPKID != ""
			}
		}
	}
	if !want {
		return nil
	}
	sa.ppk.offered = true
	return []ike.Payload{&ike.Notify{NotifyType: ike.NotifyUsePpk}}
}

func (sa *SA) candidates() []*Connection {
	if sa.env.Candidates == nil {
		return []*Connection{sa.Conn}
	}
	return append([]*Connection{sa.Conn}, sa.env.Candidates(sa.Remote.Addr())...)
}

// ppkStart mixes the initiator's keys with its PPK before it makes AUTH
// (and prepares NO_PPK_AUTH); false if the SA failed.
func (sa *SA) ppkStart() bool {
	c := sa.Conn
	if c.PPKID == "" {
		return true
	}
	if !sa.ppk.peer {
		if c.PPKRequired {
			sa.fail("ppk", "a PPK is required (ppk_required) but the peer does not support PPK: it sent no USE_PPK in IKE_SA_INIT")
			return false
		}
		sa.logger().Info("peer does not support PPK; going on without it (ppk_required is off)")
		return true
	}
	if IsEAP(c.Local.Method) {
		if c.PPKRequired {
			sa.fail("ppk", "PPK with EAP authentication is not supported")
			return false
		}
		sa.logger().Info("PPK with EAP authentication is not supported; going on without it")
		return true
	}
	if err := sa.mixPPK(c.PPK); err != nil {
		sa.fail("ppk", fmt.Sprintf("loading PPK %q failed: %v", c.PPKID, err))
		return false
	}
	return true
}

// mixPPK reads the PPK at ref from the keystore and mixes it into SK_d,
// SK_pi and SK_pr, keeping the unmixed ones; the PPK is zeroed.
func (sa *SA) mixPPK(ref string) error {
	if sa.env.KeyStore == nil {
		return fmt.Errorf("no keystore")
	}
	ppk, err := sa.env.KeyStore.Secret(ctx(), ref)
	if err != nil {
		return err
	}
	defer clear(ppk)
	if len(ppk) == 0 {
		return fmt.Errorf("the key is empty")
	}
	k := sa.keys
	for i, key := range []*[]byte{&k.SKd, &k.SKpi, &k.SKpr} {
		sa.ppk.orig[i] = *key
		*key = sa.Suite.PRFPlus(ppk, *key, len(*key))
	}
	sa.ppk.mixed = true
	return nil
}

// unmixPPK goes back to the keys without PPK.
func (sa *SA) unmixPPK() {
	k := sa.keys
	for i, key := range []*[]byte{&k.SKd, &k.SKpi, &k.SKpr} {
		clear(*key)
		*key = sa.ppk.orig[i]
	}
	sa.ppk.mixed = false
	sa.ppk.orig = [3][]byte{}
}

// ppkSettle keeps the mixed keys (the PPK is in use) and drops the
// unmixed ones.
func (sa *SA) ppkSettle() {
	for i := range sa.ppk.orig {
		clear(sa.ppk.orig[i])
	}
	sa.ppk.orig = [3][]byte{}
	sa.ppk.mixed, sa.ppk.used = false, true
	sa.logger().Info("IKE SA keys mixed with the PPK", "ppk_id", sa.Conn.PPKID)
}

// noPPKAuthRequest prepares the initiator's NO_PPK_AUTH: AUTH made with the
// unmixed SK_pi, for a responder without our PPK; nil when not wanted.
func (sa *SA) noPPKAuthRequest(req *provider.AuthRequest, idi *ike.Identification) {
	sa.ppk.noPPK = nil
	if !sa.ppk.mixed || sa.Conn.PPKRequired {
		return
	}
	mixed := sa.keys.SKpi
	sa.keys.SKpi = sa.ppk.orig[1]
	r := *req
	r.SignedOctets = sa.signedOctets(true, idi.SignedBody())
	sa.keys.SKpi = mixed
	sa.ppk.noPPK = &r
}

// makeNoPPKAuth makes NO_PPK_AUTH; it runs with the AUTH it accompanies,
// off the engine lock.
func (sa *SA) makeNoPPKAuth(auth provider.Authenticator) error {
	if sa.ppk.noPPK == nil {
		return nil
	}
	res, err := auth.Make(ctx(), sa.ppk.noPPK)
	if err != nil {
		return fmt.Errorf("making NO_PPK_AUTH: %w", err)
	}
	sa.ppk.noPPKRes = res
	return nil
}

// ppkAuthNotifies are PPK_IDENTITY and NO_PPK_AUTH for the initiator's
// IKE_AUTH request.
func (sa *SA) ppkAuthNotifies() []ike.Payload {
	if !sa.ppk.mixed {
		return nil
	}
	ps := []ike.Payload{&ike.Notify{NotifyType: ike.NotifyPpkIdentity, Data: append([]byte{ppkIDFixed}, sa.Conn.PPKID...)}}
	if r := sa.ppk.noPPKRes; r != nil {
		ps = append(ps, &ike.Notify{NotifyType: ike.NotifyNoPpkAuth, Data: r.Data})
	}
	sa.ppk.noPPK, sa.ppk.noPPKRes = nil, nil
	return ps
}

// ppkAuthResponse settles the initiator's keys from the responder's answer:
// with its PPK_IDENTITY the PPK is in use, without it the responder took
// NO_PPK_AUTH and the unmixed keys apply.
func (sa *SA) ppkAuthResponse(ps []ike.Payload) {
	if !sa.ppk.mixed {
		return
	}
	if ike.FindNotify(ps, ike.NotifyPpkIdentity) != nil {
		sa.ppkSettle()
		return
	}
	sa.logger().Info("peer did not use our PPK (it lacks PPK_ID); the IKE SA is not protected by it", "ppk_id", sa.Conn.PPKID)
	sa.unmixPPK()
}

// ppkResponder decides, before the initiator's AUTH is checked, whether
// the PPK is used: it mixes our keys when the peer named our PPK, or
// returns ps with NO_PPK_AUTH in place of AUTH when it falls back. It
// rejects the peer (and returns nil) when the PPK is required or unknown.
func (sa *SA) ppkResponder(ps []ike.Payload, reject func(class, reason string)) []ike.Payload {
	out, reason := sa.ppkDecide(ps)
	if reason != "" {
		reject("ppk", reason)
		return nil
	}
	return out
}

// ppkDecide is ppkResponder's choice; a non-empty reason refuses.
func (sa *SA) ppkDecide(ps []ike.Payload) (_ []ike.Payload, reason string) {
	c := sa.Conn
	n := ike.FindNotify(ps, ike.NotifyPpkIdentity)
	if !sa.ppk.peer || !sa.ppk.offered || n == nil {
		if c.PPKRequired {
			return ps, "a PPK is required (ppk_required) but the peer did not use one (no USE_PPK or PPK_IDENTITY)"
		}
		return ps, ""
	}
	var id []byte
	if len(n.Data) >= 2 && n.Data[0] == ppkIDFixed {
		id = n.Data[1:]
	}
	if c.PPKID != "" && bytes.Equal(id, []byte(c.PPKID)) {
		if err := sa.mixPPK(c.PPK); err != nil {
			return ps, fmt.Sprintf("loading PPK %q failed: %v", c.PPKID, err)
		}
		sa.ppkSettle()
		return ps, ""
	}
	if c.PPKRequired {
		return ps, fmt.Sprintf("the peer's PPK_ID %q is not ours (%q) and a PPK is required", id, c.PPKID)
	}
	np := ike.FindNotify(ps, ike.NotifyNoPpkAuth)
	a := ike.Get[*ike.Authentication](ps)
	if np == nil || a == nil {
		return ps, fmt.Sprintf("the peer requires its PPK %q, which we do not have (no NO_PPK_AUTH)", id)
	}
	sa.logger().Info("no PPK for the peer's PPK_ID; checking NO_PPK_AUTH instead", "ppk_id", string(id))
	out := slices.Clone(ps)
	for i, p := range out {
		if p == a {
			out[i] = &ike.Authentication{Method: a.Method, Data: np.Data}
		}
	}
	return out, ""
}

// ppkResponse is the responder's empty PPK_IDENTITY when it used the PPK.
func (sa *SA) ppkResponse() []ike.Payload {
	if !sa.ppk.used || sa.Initiator {
		return nil
	}
	return []ike.Payload{&ike.Notify{NotifyType: ike.NotifyPpkIdentity}}
}

// ppkDrop zeroes the unmixed keys of an SA that dies before settling.
func (sa *SA) ppkDrop() {
	for i := range sa.ppk.orig {
		clear(sa.ppk.orig[i])
	}
	sa.ppk.orig = [3][]byte{}
}
