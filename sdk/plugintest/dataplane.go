package plugintest

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/dataplane"
)

// DataplaneCase tells RunDataplaneConformance how to use the plugin.
type DataplaneCase struct {
	Config   []byte // JSON for Configure (nil: "{}")
	Src, Dst netip.Addr
}

// RunDataplaneConformance checks a dataplane plugin over real gRPC: SPI
// allocation, idempotent installs (the host re-installs after restarts),
// deletes, counters, policies and the event subscription's life cycle.
func RunDataplaneConformance(t *testing.T, impl dataplane.Dataplane, c DataplaneCase) {
	client := DataplaneClient(t, impl)
	checkBase(t, client, base.KindDataplane, c.Config)
	ctx := context.Background()

	spi1, err1 := client.AllocateSPI(ctx, c.Src, c.Dst)
	spi2, err2 := client.AllocateSPI(ctx, c.Src, c.Dst)
	if err1 != nil || err2 != nil {
		t.Fatalf("AllocateSPI: %v, %v", err1, err2)
	}
	if spi1 == spi2 {
		t.Fatalf("AllocateSPI returned %#x twice", spi1)
	}
	sa := &dataplane.ChildSA{
		ReqID: 7, SPI: spi1, Inbound: true, Src: c.Src, Dst: c.Dst, Mode: dataplane.Transport,
		Encryption: "aes-gcm-16", EncKey: make([]byte, 20), ReplayWindow: 32,
		LocalTS:  []dataplane.TrafficSelector{{Start: c.Dst, End: c.Dst, EndPort: 65535}},
		RemoteTS: []dataplane.TrafficSelector{{Start: c.Src, End: c.Src, EndPort: 65535}},
		Hard:     dataplane.Lifetime{Time: time.Hour},
	}
	key := dataplane.SAKey{Dst: c.Dst, SPI: spi1}
	t.Run("SA life cycle", func(t *testing.T) {
		if err := client.InstallSA(ctx, sa); err != nil {
			t.Fatalf("InstallSA: %v", err)
		}
		if err := client.InstallSA(ctx, sa); err != nil {
			t.Fatalf("InstallSA of the same SA again (restart re-install): %v", err)
		}
		cs, err := client.Counters(ctx, []dataplane.SAKey{key})
		if err != nil || len(cs) != 1 {
			t.Fatalf("Counters of an installed SA: %v, %v", cs, err)
		}
		if err := client.DeleteSA(ctx, key); err != nil {
			t.Fatalf("DeleteSA: %v", err)
		}
		if _, err := client.Counters(ctx, []dataplane.SAKey{key}); err == nil {
			t.Errorf("Counters of a deleted SA succeeded")
		}
	})
	t.Run("policy life cycle", func(t *testing.T) {
		p := &dataplane.Policy{ReqID: 7, Dir: dataplane.Out, Action: dataplane.Protect, Mode: dataplane.Transport,
			Local:   dataplane.TrafficSelector{Start: c.Src, End: c.Src, EndPort: 65535},
			Remote:  dataplane.TrafficSelector{Start: c.Dst, End: c.Dst, EndPort: 65535},
			TmplSrc: c.Src, TmplDst: c.Dst}
		if err := client.InstallPolicy(ctx, p); err != nil {
			t.Fatalf("InstallPolicy: %v", err)
		}
		if err := client.InstallPolicy(ctx, p); err != nil {
			t.Fatalf("InstallPolicy again: %v", err)
		}
		if err := client.DeletePolicy(ctx, p); err != nil {
			t.Fatalf("DeletePolicy: %v", err)
		}
	})
	t.Run("version 2: InstallChild, SPI for any peer", func(t *testing.T) {
		// The host allocates SPIs ahead (dataplane.SPIHoldTime): one from
		// AllocateSPI(src, dst) must take an SA from another source.
		spi, err := client.AllocateSPI(ctx, c.Src, c.Dst)
		if err != nil {
			t.Fatalf("AllocateSPI over the stream: %v", err)
		}
		other := c.Src.Next()
		in := *sa
		in.ReqID, in.SPI, in.Src = 8, spi, other
		in.EncKey = make([]byte, 20)
		in.RemoteTS = []dataplane.TrafficSelector{{Start: other, End: other, EndPort: 65535}}
		p := &dataplane.Policy{ReqID: 8, Dir: dataplane.In, Action: dataplane.Protect, Mode: dataplane.Transport,
			Local:   dataplane.TrafficSelector{Start: c.Dst, End: c.Dst, EndPort: 65535},
			Remote:  dataplane.TrafficSelector{Start: other, End: other, EndPort: 65535},
			TmplSrc: other, TmplDst: c.Dst}
		if err := client.InstallChild(ctx, []*dataplane.ChildSA{&in}, []*dataplane.Policy{p}); err != nil {
			t.Fatalf("InstallChild with an SPI allocated for another peer: %v", err)
		}
		k := dataplane.SAKey{Dst: c.Dst, SPI: spi}
		if cs, err := client.Counters(ctx, []dataplane.SAKey{k}); err != nil || len(cs) != 1 {
			t.Fatalf("Counters of the SA InstallChild installed: %v, %v", cs, err)
		}
		if err := client.DeletePolicy(ctx, p); err != nil {
			t.Errorf("DeletePolicy: %v", err)
		}
		if err := client.DeleteSA(ctx, k); err != nil {
			t.Errorf("DeleteSA: %v", err)
		}
	})
	t.Run("version 2: SPIs allocated in bulk", func(t *testing.T) {
		// The host's SPI pool asks for many in one stream message; each
		// must be distinct, and the ones it never uses go back.
		spis, err := client.AllocateSPIs(ctx, c.Src, c.Dst, 16)
		if err != nil || len(spis) != 16 {
			t.Fatalf("AllocateSPIs(16): %d SPIs, %v", len(spis), err)
		}
		for _, spi := range spis {
			if err := client.DeleteSA(ctx, dataplane.SAKey{Dst: c.Dst, SPI: spi}); err != nil {
				t.Errorf("DeleteSA of the unused SPI %08x: %v", spi, err)
			}
		}
	})
	t.Run("malformed", func(t *testing.T) {
		err := client.InstallSA(ctx, &dataplane.ChildSA{})
		noPanic(t, "InstallSA(empty)", err)
		if err == nil {
			t.Errorf("InstallSA of an SA without SPI or addresses succeeded")
		}
	})
	t.Run("events end with their context", func(t *testing.T) {
		ectx, cancel := context.WithCancel(ctx)
		ch, err := client.Events(ectx)
		if err != nil {
			t.Fatalf("Events: %v", err)
		}
		cancel()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return
				}
			case <-deadline:
				t.Fatal("event channel still open 5s after its context ended")
			}
		}
	})
}
