package ikesa

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/transform"
)

// IKE_INTERMEDIATE (RFC 9242) carrying RFC 9370 additional key exchanges:
// after IKE_SA_INIT, one exchange per ADDKE transform; each updates the
// IKE SA's keys, and AUTH covers every IKE_INTERMEDIATE message (IntAuth).

// intermediate is the per-SA IntAuth chain.
type intermediate struct {
	done         int    // additional key exchanges completed
	authI, authR []byte // IntAuth_iN, IntAuth_rN
}

func offersAddKE(ps []transform.Proposal) bool {
	for _, p := range ps {
		for _, t := range p.Transforms {
			if t.Type >= ike.TransformADDKE1 && t.Type <= ike.TransformADDKE7 {
				return true
			}
		}
	}
	return false
}

// intAuthData is the message as RFC 9242 §3.3.2 authenticates it: the IKE
// header and SK header with lengths as if the SK payload held only the
// plaintext inner payloads, then those payloads.
func intAuthData(header []byte, first ike.PayloadType, plain []byte) []byte {
	out := make([]byte, 0, ike.HeaderLen+4+len(plain))
	out = append(out, header[:ike.HeaderLen]...)
	out[16] = byte(ike.PayloadSK) // as if unfragmented (RFC 9242 §3.3.2)
	binary.BigEndian.PutUint32(out[24:28], uint32(ike.HeaderLen+4+len(plain)))
	out = append(out, byte(first), 0, byte((4+len(plain))>>8), byte(4+len(plain)))
	return append(out, plain...)
}

// chainIntAuth folds one message into IntAuth with the current SK_p.
func (sa *SA) chainIntAuth(fromInitiator bool, data []byte) {
	in := &sa.inter
	if fromInitiator {
		in.authI = sa.Suite.ComputePRF(sa.keys.SKpi, append(append([]byte(nil), in.authI...), data...))
	} else {
		in.authR = sa.Suite.ComputePRF(sa.keys.SKpr, append(append([]byte(nil), in.authR...), data...))
	}
}

// intAuthSuffix is IntAuth_iN | IntAuth_rN | IKE_AUTH_MID, appended to the
// signed octets when IKE_INTERMEDIATE exchanges took place.
func (sa *SA) intAuthSuffix() []byte {
	if sa.inter.done == 0 {
		return nil
	}
	out := append(append([]byte(nil), sa.inter.authI...), sa.inter.authR...)
	return binary.BigEndian.AppendUint32(out, sa.authMID)
}

// startIntermediate sends the next additional key exchange, or IKE_AUTH
// when all are done.
func (sa *SA) startIntermediate(child string) {
	methods := sa.Suite.AdditionalKEs()
	if sa.inter.done >= len(methods) {
		sa.startAuth(child)
		return
	}
	method := methods[sa.inter.done]
	ke, err := transform.NewKeyExchange(method)
	if err != nil {
		sa.fail("internal", err.Error())
		return
	}
	ps := []ike.Payload{&ike.KeyExchange{Group: method, Data: ke.Public()}}
	r := &request{exchange: ike.IKE_INTERMEDIATE, payloads: ps}
	r.onResponse = func(resp []ike.Payload) error {
		kr := ike.Get[*ike.KeyExchange](resp)
		if kr == nil || kr.Group != method {
			sa.fail("ke", fmt.Sprintf("peer did not answer additional key exchange %d", method))
			return errFatal
		}
		shared, err := ke.SharedSecret(kr.Data)
		if err != nil {
			sa.fail("ke", fmt.Sprintf("peer's additional key exchange data is invalid: %v", err))
			return errFatal
		}
		sa.chainIntAuth(false, sa.lastPlain)
		err = sa.setKeys(sa.Suite.AdditionalKE(sa.keys, shared, sa.ni, sa.nr, sa.SPIi, sa.SPIr))
		clear(shared)
		if err != nil {
			sa.fail("internal", err.Error())
			return errFatal
		}
		sa.inter.done++
		sa.startIntermediate(child)
		return nil
	}
	sa.queueRequest(r)
	// IntAuth_i covers our request as sent, under the keys it was sent with.
	first, plain, err := ike.MarshalPayloads(ps)
	if err == nil {
		sa.chainIntAuth(true, intAuthData(r.datagrams[0], first, plain))
	}
}

// handleIntermediateRequest answers one additional key exchange.
func (sa *SA) handleIntermediateRequest(id uint32, ps []ike.Payload, data []byte) {
	methods := sa.Suite.AdditionalKEs()
	ke := ike.Get[*ike.KeyExchange](ps)
	if sa.State != StateConnecting || sa.inter.done >= len(methods) || ke == nil || ke.Group != methods[sa.inter.done] {
		sa.respond(ike.IKE_INTERMEDIATE, id, []ike.Payload{&ike.Notify{NotifyType: ike.NotifyInvalidSyntax}})
		sa.fail("ke", "unexpected IKE_INTERMEDIATE request")
		return
	}
	pub, shared, err := transform.RespondKeyExchange(ke.Group, ke.Data)
	if err != nil {
		sa.respond(ike.IKE_INTERMEDIATE, id, []ike.Payload{&ike.Notify{NotifyType: ike.NotifyInvalidSyntax}})
		sa.fail("ke", fmt.Sprintf("peer's additional key exchange data is invalid: %v", err))
		return
	}
	defer clear(shared)
	sa.chainIntAuth(true, data)
	out := []ike.Payload{&ike.KeyExchange{Group: ke.Group, Data: pub}}
	sa.respond(ike.IKE_INTERMEDIATE, id, out)
	if first, plain, err := ike.MarshalPayloads(out); err == nil {
		sa.chainIntAuth(false, intAuthData(sa.lastResp[0], first, plain))
	}
	if err := sa.setKeys(sa.Suite.AdditionalKE(sa.keys, shared, sa.ni, sa.nr, sa.SPIi, sa.SPIr)); err != nil {
		sa.fail("internal", err.Error())
		return
	}
	sa.inter.done++
}

// openWithData decrypts m and also returns the data IntAuth covers.
func (sa *SA) openWithData(m *ike.Message) ([]ike.Payload, []byte, error) {
	if len(m.Payloads) == 0 {
		return nil, nil, errors.New("no SK payload")
	}
	sk, ok := m.Payloads[len(m.Payloads)-1].(*ike.Encrypted)
	if !ok || len(m.Payloads) != 1 {
		return nil, nil, errors.New("no SK payload")
	}
	aad := m.Raw[:len(m.Raw)-len(sk.Data)]
	plain, err := sa.in.Open(nil, aad, sk.Data)
	if err != nil {
		return nil, nil, err
	}
	ps, err := ike.ParsePayloads(sk.NextPayload, plain)
	if err != nil {
		return nil, nil, err
	}
	return ps, intAuthData(m.Raw, sk.NextPayload, plain), nil
}

// TamperIntAuthForTest flips a bit of IntAuth_i, so tests can show that
// AUTH covers the IKE_INTERMEDIATE messages.
func (sa *SA) TamperIntAuthForTest() {
	if len(sa.inter.authI) > 0 {
		sa.inter.authI[0] ^= 1
	}
}
