package ikesa

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/transform"
)

// IKE_FOLLOWUP_KE (RFC 9370 §2.2.2): an IKE SA rekey whose suite has
// additional key exchanges runs them after the CREATE_CHILD_SA, linked by
// the responder's ADDITIONAL_KEY_EXCHANGE data; the new SA's SKEYSEED is
// prf(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n)).

type followup struct {
	suite      transform.Suite
	spii, spir uint64
	ni, nr     []byte
	shared     [][]byte // SK(0), SK(1), ...
	link       []byte
	done       int // additional exchanges completed
}

func (f *followup) zero() {
	for _, s := range f.shared {
		clear(s)
	}
}

// rekeyKeys derives the new IKE SA's keys from all shared secrets.
func (sa *SA) rekeyKeys(f *followup) *transform.IKEKeys {
	return transform.RekeyIKE(sa.Suite, sa.keys.SKd, f.suite, f.shared[0], f.ni, f.nr, f.spii, f.spir, f.shared[1:]...)
}

// followupStep (initiator) sends the next additional key exchange, or
// finishes the rekey when all are done.
func (sa *SA) followupStep(f *followup, finish func(*followup) error) error {
	methods := f.suite.AdditionalKEs()
	if f.done >= len(methods) {
		return finish(f)
	}
	if len(f.link) == 0 {
		f.zero()
		return fmt.Errorf("peer sent no ADDITIONAL_KEY_EXCHANGE link for the follow-up exchanges")
	}
	method := methods[f.done]
	ke, err := transform.NewKeyExchange(method)
	if err != nil {
		return err
	}
	sa.queueRequest(&request{exchange: ike.IKE_FOLLOWUP_KE,
		payloads: []ike.Payload{&ike.Notify{NotifyType: ike.NotifyAdditionalKeyExchange, Data: f.link}, &ike.KeyExchange{Group: method, Data: ke.Public()}},
		onResponse: func(ps []ike.Payload) error {
			kr := ike.Get[*ike.KeyExchange](ps)
			if kr == nil || kr.Group != method {
				f.zero()
				sa.State = StateEstablished
				return fmt.Errorf("peer did not answer follow-up key exchange %d", method)
			}
			shared, err := ke.SharedSecret(kr.Data)
			if err != nil {
				f.zero()
				sa.State = StateEstablished
				return err
			}
			f.shared = append(f.shared, shared)
			f.link = nil
			if n := ike.FindNotify(ps, ike.NotifyAdditionalKeyExchange); n != nil {
				f.link = slices.Clone(n.Data)
			}
			f.done++
			return sa.followupStep(f, finish)
		}})
	return nil
}

// handleFollowupRequest (responder) answers one IKE_FOLLOWUP_KE and, after
// the last, creates the new IKE SA.
func (sa *SA) handleFollowupRequest(id uint32, ps []ike.Payload) {
	f := sa.pendingFollowup
	n := ike.FindNotify(ps, ike.NotifyAdditionalKeyExchange)
	ke := ike.Get[*ike.KeyExchange](ps)
	if f == nil || n == nil || !bytes.Equal(n.Data, f.link) {
		sa.respond(ike.IKE_FOLLOWUP_KE, id, []ike.Payload{&ike.Notify{NotifyType: ike.NotifyStateNotFound}})
		return
	}
	methods := f.suite.AdditionalKEs()
	if ke == nil || ke.Group != methods[f.done] {
		sa.respond(ike.IKE_FOLLOWUP_KE, id, []ike.Payload{&ike.Notify{NotifyType: ike.NotifyInvalidKePayload,
			Data: []byte{byte(methods[f.done] >> 8), byte(methods[f.done])}}})
		return
	}
	pub, shared, err := transform.RespondKeyExchange(ke.Group, ke.Data)
	if err != nil {
		sa.respond(ike.IKE_FOLLOWUP_KE, id, []ike.Payload{&ike.Notify{NotifyType: ike.NotifyInvalidSyntax}})
		return
	}
	f.shared = append(f.shared, shared)
	f.done++
	out := []ike.Payload{&ike.KeyExchange{Group: ke.Group, Data: pub}}
	if f.done < len(methods) {
		f.link = sa.env.nonce()[:8]
		out = append(out, &ike.Notify{NotifyType: ike.NotifyAdditionalKeyExchange, Data: f.link})
		sa.respond(ike.IKE_FOLLOWUP_KE, id, out)
		return
	}
	sa.respond(ike.IKE_FOLLOWUP_KE, id, out)
	sa.pendingFollowup = nil
	sa.completeResponderRekey(f)
}

// completeResponderRekey creates the new IKE SA on the responder side.
func (sa *SA) completeResponderRekey(f *followup) {
	defer f.zero()
	n := sa.successorSA(false, f.spii, f.spir, f.suite, f.ni, f.nr, nil)
	if err := n.setKeys(sa.rekeyKeys(f)); err != nil {
		sa.logger().Info("IKE rekey failed", "err", err)
		return
	}
	sa.spawned = append(sa.spawned, n)
	sa.peerIKERekey = &peerRekey{ni: f.ni, nr: f.nr, ike: n}
	if sa.successor == nil || sa.successor.dead {
		sa.successor = n
	}
	sa.env.Stats.Rekeys["ike"]++
}
