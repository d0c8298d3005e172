package transform

import (
	"fmt"
	"testing"
)

// go test -run '^$' -bench . -benchmem ./core/transform

// BenchmarkIKEKeySchedule is a new IKE SA's whole schedule: SKEYSEED and
// every SK_* from prf+.
func BenchmarkIKEKeySchedule(b *testing.B) {
	for _, s := range []Suite{
		{Protocol: ProtoIKE, Encr: EncrAESGCM16, EncrKeyBits: 256, PRF: PRFHMACSHA256, KE: KEX25519},
		{Protocol: ProtoIKE, Encr: EncrAESGCM16, EncrKeyBits: 256, PRF: PRFHMACSHA384, KE: KEX25519},
		{Protocol: ProtoIKE, Encr: EncrAESCBC, EncrKeyBits: 256, Integ: IntegHMACSHA512256, PRF: PRFHMACSHA512, KE: KEECP521},
	} {
		ni, nr, g := randB(32), randB(32), randB(32)
		b.Run(s.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				k := s.NewIKEKeys(ni, nr, g, 1, 2)
				k.Zero()
			}
		})
	}
}

func BenchmarkChildKeymat(b *testing.B) {
	ikeS := Suite{Protocol: ProtoIKE, PRF: PRFHMACSHA256}
	child := Suite{Protocol: ProtoESP, Encr: EncrAESGCM16, EncrKeyBits: 256}
	skd, ni, nr, g := randB(32), randB(32), randB(32), randB(32)
	for _, pfs := range []bool{false, true} {
		b.Run(fmt.Sprintf("pfs=%v", pfs), func(b *testing.B) {
			var shared []byte
			if pfs {
				shared = g
			}
			b.ReportAllocs()
			for b.Loop() {
				k, _ := ChildKeymat(ikeS, skd, child, shared, ni, nr)
				k.Zero()
			}
		})
	}
}

// BenchmarkSK seals and opens a 256-byte inner payload chain per cipher.
func BenchmarkSK(b *testing.B) {
	pt, aad := randB(256), randB(32)
	for _, c := range allSKCiphers(b) {
		sealed, _ := c.seal.Seal(nil, aad, pt)
		b.Run("seal/"+c.name, func(b *testing.B) {
			dst := make([]byte, 0, 512)
			b.SetBytes(int64(len(pt)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.seal.Seal(dst, aad, pt); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("open/"+c.name, func(b *testing.B) {
			dst := make([]byte, 0, 512)
			b.SetBytes(int64(len(pt)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.open.Open(dst, aad, sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkKE: the initiator's keygen + shared secret, and the responder's
// whole part (keygen + shared for DH, encapsulation for ML-KEM).
func BenchmarkKE(b *testing.B) {
	for _, a := range keAlgs {
		peer, err := NewKeyExchange(a.id)
		if err != nil {
			b.Fatal(err)
		}
		// What the initiator receives: a DH public value, or a ciphertext
		// for its own key (made per iteration below for ML-KEM).
		b.Run("initiator/"+a.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ke, err := NewKeyExchange(a.id)
				if err != nil {
					b.Fatal(err)
				}
				in := peer.Public()
				if a.kem {
					b.StopTimer()
					in, _, err = RespondKeyExchange(a.id, ke.Public())
					b.StartTimer()
					if err != nil {
						b.Fatal(err)
					}
				}
				if _, err := ke.SharedSecret(in); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("responder/"+a.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := RespondKeyExchange(a.id, peer.Public()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
