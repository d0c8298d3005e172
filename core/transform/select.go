package transform

import (
	"fmt"
	"strings"

	"github.com/veil-ipsec/veil/core/ike"
)

// Suite is one negotiated choice: a single transform of each type.
type Suite struct {
	Protocol    Protocol
	Encr        uint16
	EncrKeyBits int
	PRF         uint16 // IKE only
	Integ       uint16 // 0 with AEAD
	KE          uint16 // 0: none (ESP without PFS)
	ESN         bool
	AddKE       []uint16 // ADDKE1.. in order; 0 = none for that round
}

// Transforms returns the suite as wire transforms (the responder's answer).
func (s Suite) Transforms() []ike.Transform {
	var ts []ike.Transform
	enc := ike.Transform{Type: ike.TransformENCR, ID: s.Encr}
	if a := findEncr(s.Encr, s.EncrKeyBits); a != nil && !a.fixedKey {
		enc.KeyLength = uint16(s.EncrKeyBits)
	}
	ts = append(ts, enc)
	if s.PRF != 0 {
		ts = append(ts, ike.Transform{Type: ike.TransformPRF, ID: s.PRF})
	}
	if s.Integ != 0 {
		ts = append(ts, ike.Transform{Type: ike.TransformINTEG, ID: s.Integ})
	}
	if s.KE != 0 {
		ts = append(ts, ike.Transform{Type: ike.TransformKE, ID: s.KE})
	}
	for i, id := range s.AddKE {
		if id != KENone {
			ts = append(ts, ike.Transform{Type: ike.TransformADDKE1 + ike.TransformType(i), ID: id})
		}
	}
	if s.Protocol == ProtoESP {
		esn := ESNNo
		if s.ESN {
			esn = ESNYes
		}
		ts = append(ts, ike.Transform{Type: ike.TransformESN, ID: esn})
	}
	return ts
}

// String prints the suite in strongSwan's syntax.
func (s Suite) String() string {
	return Proposal{Protocol: s.Protocol, Transforms: s.Transforms()}.String()
}

// AdditionalKEs lists the additional key exchange methods in order, without
// the rounds negotiated as none.
func (s Suite) AdditionalKEs() []uint16 {
	var out []uint16
	for _, id := range s.AddKE {
		if id != KENone {
			out = append(out, id)
		}
	}
	return out
}

// NoProposalError lists both sides' proposals so an operator can see why
// nothing matched.
type NoProposalError struct {
	Ours, Theirs []string
}

func (e *NoProposalError) Error() string {
	return fmt.Sprintf("no proposal chosen: ours %s, theirs %s", strings.Join(e.Ours, ", "), strings.Join(e.Theirs, ", "))
}

// Select chooses a suite from the peer's proposals. By default the peer's
// order wins (the initiator's, RFC 7296 §2.7); preferOurs makes ours win.
// It returns the peer's proposal number to answer with.
func Select(ours []Proposal, theirs []ike.Proposal, preferOurs bool) (Suite, uint8, error) {
	try := func(o Proposal, t ike.Proposal) (Suite, bool) {
		if t.Protocol != o.Protocol.wire() {
			return Suite{}, false
		}
		return match(o, t, preferOurs)
	}
	if preferOurs {
		for _, o := range ours {
			for _, t := range theirs {
				if s, ok := try(o, t); ok {
					return s, t.Number, nil
				}
			}
		}
	} else {
		for _, t := range theirs {
			for _, o := range ours {
				if s, ok := try(o, t); ok {
					return s, t.Number, nil
				}
			}
		}
	}
	err := &NoProposalError{}
	for _, o := range ours {
		err.Ours = append(err.Ours, o.String())
	}
	for _, t := range theirs {
		p := Proposal{Protocol: ProtoIKE, Transforms: t.Transforms}
		if t.Protocol == ike.ProtoESP {
			p.Protocol = ProtoESP
		}
		err.Theirs = append(err.Theirs, p.String())
	}
	return Suite{}, 0, err
}

func match(o Proposal, t ike.Proposal, preferOurs bool) (Suite, bool) {
	s := Suite{Protocol: o.Protocol}
	types := map[ike.TransformType]bool{}
	for _, x := range t.Transforms {
		types[x.Type] = true
	}
	for _, x := range o.Transforms {
		types[x.Type] = true
	}
	for typ := range types {
		pick, ok := pickType(o.Transforms, t.Transforms, typ, preferOurs)
		if !ok {
			return Suite{}, false
		}
		switch {
		case typ == ike.TransformENCR:
			s.Encr, s.EncrKeyBits = pick.ID, int(pick.KeyLength)
			if a := findEncr(pick.ID, int(pick.KeyLength)); a != nil && a.fixedKey {
				s.EncrKeyBits = a.keyBits
			}
		case typ == ike.TransformPRF:
			s.PRF = pick.ID
		case typ == ike.TransformINTEG:
			s.Integ = pick.ID
		case typ == ike.TransformKE:
			s.KE = pick.ID
		case typ == ike.TransformESN:
			s.ESN = pick.ID == ESNYes
		case typ >= ike.TransformADDKE1 && typ <= ike.TransformADDKE7:
			i := int(typ - ike.TransformADDKE1)
			for len(s.AddKE) <= i {
				s.AddKE = append(s.AddKE, KENone)
			}
			s.AddKE[i] = pick.ID
		default:
			return Suite{}, false
		}
	}
	if s.Encr == 0 || (o.Protocol == ProtoIKE && (s.PRF == 0 || s.KE == 0)) {
		return Suite{}, false
	}
	if a := findEncr(s.Encr, s.EncrKeyBits); a == nil || (!a.aead && s.Integ == 0) || (a.aead && s.Integ != 0) {
		return Suite{}, false
	}
	return s, true
}

// pickType chooses the transform of one type both sides accept, in the
// preferred side's order. A type only one side lists is acceptable when it
// is an additional key exchange that side allows to be none.
func pickType(ours, theirs []ike.Transform, typ ike.TransformType, preferOurs bool) (ike.Transform, bool) {
	o, t := ofType(ours, typ), ofType(theirs, typ)
	isAdd := typ >= ike.TransformADDKE1 && typ <= ike.TransformADDKE7
	none := ike.Transform{Type: typ, ID: KENone}
	if len(o) == 0 || len(t) == 0 {
		if isAdd && (containsT(o, none) || containsT(t, none)) {
			return none, true
		}
		if typ == ike.TransformINTEG && len(o) == 0 && len(t) == 1 && t[0].ID == IntegNone {
			return t[0], true
		}
		return ike.Transform{}, false
	}
	first, second := t, o
	if preferOurs {
		first, second = o, t
	}
	for _, x := range first {
		if len(x.OtherAttributes) > 0 || !known(x) {
			continue
		}
		for _, y := range second {
			if x.ID == y.ID && x.KeyLength == y.KeyLength && len(y.OtherAttributes) == 0 {
				return x, true
			}
		}
	}
	return ike.Transform{}, false
}

func ofType(ts []ike.Transform, typ ike.TransformType) []ike.Transform {
	var out []ike.Transform
	for _, t := range ts {
		if t.Type == typ {
			out = append(out, t)
		}
	}
	return out
}

// known reports whether t is in our tables (weak algorithms are not, so a
// peer can never get them negotiated).
func known(t ike.Transform) bool {
	switch t.Type {
	case ike.TransformENCR:
		return findEncr(t.ID, int(t.KeyLength)) != nil
	case ike.TransformPRF:
		return findPRF(t.ID) != nil
	case ike.TransformINTEG:
		return t.ID == IntegNone || findInteg(t.ID) != nil
	case ike.TransformESN:
		return t.ID == ESNNo || t.ID == ESNYes
	case ike.TransformKE:
		a := findKE(t.ID)
		return a != nil && !a.kem
	default:
		return t.ID == KENone || findKE(t.ID) != nil
	}
}

func containsT(ts []ike.Transform, x ike.Transform) bool {
	for _, t := range ts {
		if t.Type == x.Type && t.ID == x.ID && t.KeyLength == x.KeyLength && len(t.OtherAttributes) == 0 {
			return true
		}
	}
	return false
}
