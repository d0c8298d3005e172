package engine

import (
	"slices"
	"testing"
	"time"
)

// Reauthentication replaces the IKE SA with a new one made from scratch
// (new SPIs, a fresh IKE_AUTH: the PSK is checked again) and brings every
// child back on it; both ends end up with exactly one IKE SA.
func TestReauthentication(t *testing.T) {
	p := newPair(t, func(a, b *Connection) {
		twoChildren(t)(a, b)
		a.ReauthTime = 4 * time.Hour
	})
	p.up()
	p.wait(p.a.e.StartInitiate("conn", "c2"))
	p.established(t, 2)
	before := p.a.e.Snapshot()[0]
	oldSPIs := spis(p.a.dp)
	authsBefore := p.b.psk.VerifyCalls

	p.advance(3*time.Hour + 35*time.Minute) // before the earliest jittered time (4 h - 10 %)
	p.flush()
	if p.a.e.Snapshot()[0].SPIi != before.SPIi {
		t.Fatal("reauthenticated early")
	}
	p.advance(25 * time.Minute)
	p.flush()
	p.established(t, 2)
	after := p.a.e.Snapshot()[0]
	if after.SPIi == before.SPIi || after.SPIr == before.SPIr {
		t.Fatal("IKE SA not replaced")
	}
	for _, s := range spis(p.a.dp) {
		if slices.Contains(oldSPIs, s) {
			t.Fatalf("old child SPI %08x still installed", s)
		}
	}
	if p.b.psk.VerifyCalls == authsBefore {
		t.Fatal("the peer did not authenticate us again")
	}
	// The schedule carries on: a second reauthentication 4 h later.
	p.advance(4 * time.Hour)
	p.flush()
	p.established(t, 2)
	if p.a.e.Snapshot()[0].SPIi == after.SPIi {
		t.Fatal("no second reauthentication")
	}
}

// An IKE rekey keeps the reauthentication deadline: rekeying every hour
// must not postpone reauthentication for ever.
func TestReauthenticationSurvivesIKERekey(t *testing.T) {
	p := newPair(t, func(a, b *Connection) {
		a.ReauthTime = 4 * time.Hour
		a.RekeyTime = time.Hour
	})
	p.up()
	authsBefore := p.b.psk.VerifyCalls
	for range 4 {
		p.advance(time.Hour)
		p.flush()
	}
	p.advance(10 * time.Minute)
	p.flush()
	p.established(t, 1)
	if p.b.psk.VerifyCalls == authsBefore {
		t.Fatal("rekeys postponed reauthentication")
	}
}
