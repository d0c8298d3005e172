package engine

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/core/transport"
)

func TestDPDRestart(t *testing.T) {
	p := newPair(t, func(a, b *Connection) { a.DPDDelay, a.DPDAction = 30*time.Second, "restart" })
	p.up()
	first := p.a.e.Snapshot()[0].SPIi
	// B loses its state (e.g. a reboot): A's checks go unanswered.
	p.b.e.mu.Lock()
	for _, sa := range p.b.e.sas {
		sa.ForceDestroy("reboot")
		p.b.e.after(sa)
	}
	p.b.e.mu.Unlock()
	for i := 0; i < 10; i++ {
		p.advance(30 * time.Second)
		p.flush()
	}
	s := p.a.e.Snapshot()
	if len(s) != 1 || s[0].SPIi == first || s[0].State != "ESTABLISHED" {
		t.Fatalf("not restarted: %+v", s)
	}
	p.established(t, 1)
}

func TestShutdown(t *testing.T) {
	p := newPair(t, nil)
	p.up()
	p.net.SetAutoDeliver(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.a.e.Run(ctx)
	go p.b.e.Run(ctx)
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := p.a.e.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(p.b.e.Snapshot()) == 0 })
	if len(p.a.dp.Outbound())+len(p.b.dp.Outbound()) != 0 || p.a.dp.PolicyCount() != 0 {
		t.Fatal("dataplane not cleaned")
	}
}

func TestShutdownSilentPeer(t *testing.T) {
	p := newPair(t, nil)
	p.up()
	p.filter = func(transport.Packet) []transport.Packet { return nil }
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.a.e.Shutdown(ctx); err == nil {
		t.Fatal("shutdown reported success although the peer never answered")
	}
	if len(p.a.dp.SAs) != 0 || p.a.dp.PolicyCount() != 0 || len(p.a.e.Snapshot()) != 0 {
		t.Fatal("shutdown left state behind")
	}
}

func TestSubscribeEvents(t *testing.T) {
	p := newPair(t, nil)
	ch, cancel := p.a.e.Subscribe()
	p.up()
	p.wait(p.a.e.StartRekey("conn", "c1"))
	done, _ := p.a.e.StartTerminate("conn")
	p.flush()
	<-done
	cancel()
	var kinds []string
	for ev := range ch {
		if ev.Conn != "conn" {
			t.Fatalf("event %+v", ev)
		}
		kinds = append(kinds, ev.Kind.String())
	}
	if got := strings.Join(kinds, ","); got != "up,child-up,child-up,rekeyed,child-down,down" {
		t.Fatalf("events %s", got)
	}
	b, _ := json.Marshal(Event{Kind: 1, Conn: "x"})
	if !strings.Contains(string(b), `"kind":"up"`) {
		t.Fatalf("json %s", b)
	}
}

func TestSnapshotJSON(t *testing.T) {
	p := newPair(t, nil)
	p.up()
	b, err := json.Marshal(p.a.e.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "state", "local", "remote", "initiator", "spi_i", "spi_r", "proposal", "established_at", "children",
		"spi_in", "spi_out", "local_ts", "remote_ts", "bytes_in", "bytes_out", "packets_in", "packets_out", "mode"} {
		if !strings.Contains(string(b), `"`+k+`":`) {
			t.Fatalf("snapshot JSON lacks %q: %s", k, b)
		}
	}
	if strings.Contains(strings.ToLower(string(b)), "key") {
		t.Fatalf("snapshot mentions keys: %s", b)
	}
}

func TestAPIErrors(t *testing.T) {
	p := newPair(t, nil)
	if err, _ := result(p.a.e.StartInitiate("nope", "")); err == nil {
		t.Fatal("unknown connection accepted")
	}
	if err, _ := result(p.a.e.StartInitiate("conn", "nope")); err == nil {
		t.Fatal("unknown child accepted")
	}
	if err, _ := result(p.a.e.StartRekey("conn", "")); err == nil {
		t.Fatal("rekey without an SA accepted")
	}
	if _, err := p.a.e.StartTerminate("nope"); err == nil {
		t.Fatal("terminate of unknown connection accepted")
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without transport accepted")
	}
}
