package plugintest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/base"
)

// AuthCase tells RunAuthConformance how to use the plugin.
type AuthCase struct {
	// Config is the JSON config for Configure (nil: "{}").
	Config []byte
	// Request is a Make request the configured plugin must answer.
	Request *auth.Request
	// Peer turns Request and Make's result into the Verify request the
	// other side would make. nil: the same request with Method, Data and
	// Certs of the result (right for symmetric methods such as PSK).
	Peer func(req *auth.Request, res *auth.Result) *auth.Request
}

// RunAuthConformance checks an auth plugin over real gRPC: base behaviour,
// Make/Verify round trips, rejection of altered AUTH data, signed octets and
// methods, robustness against malformed requests, concurrent calls.
func RunAuthConformance(t *testing.T, impl auth.Authenticator, c AuthCase) {
	client := AuthClient(t, impl)
	checkBase(t, client, base.KindAuth, c.Config)
	ctx := context.Background()
	peer := c.Peer
	if peer == nil {
		peer = func(req *auth.Request, res *auth.Result) *auth.Request {
			v := *req
			v.Method, v.Data, v.Certs = res.Method, res.Data, res.Certs
			return &v
		}
	}

	res, err := client.Make(ctx, c.Request)
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	verify := peer(c.Request, res)
	t.Run("round trip", func(t *testing.T) {
		if err := client.Verify(ctx, verify); err != nil {
			t.Fatalf("Verify of Make's result: %v", err)
		}
		again, err := client.Make(ctx, c.Request)
		if err != nil {
			t.Fatal(err)
		}
		if again.Method != res.Method {
			t.Errorf("Make is not stable: method %d then %d", res.Method, again.Method)
		}
	})
	t.Run("altered data rejected", func(t *testing.T) {
		for i := range []int{0, len(verify.Data) - 1} {
			bad := *verify
			bad.Data = bytes.Clone(verify.Data)
			bad.Data[i] ^= 0x01
			if err := client.Verify(ctx, &bad); err == nil {
				t.Errorf("Verify accepted AUTH data with byte %d flipped", i)
			}
		}
		short := *verify
		short.Data = verify.Data[:len(verify.Data)/2]
		if err := client.Verify(ctx, &short); err == nil {
			t.Errorf("Verify accepted truncated AUTH data")
		}
		empty := *verify
		empty.Data = nil
		if err := client.Verify(ctx, &empty); err == nil {
			t.Errorf("Verify accepted empty AUTH data")
		}
	})
	t.Run("altered signed octets rejected", func(t *testing.T) {
		bad := *verify
		bad.SignedOctets = append(bytes.Clone(verify.SignedOctets), 0)
		if err := client.Verify(ctx, &bad); err == nil {
			t.Errorf("Verify accepted AUTH over other signed octets")
		}
	})
	t.Run("other method rejected", func(t *testing.T) {
		bad := *verify
		bad.Method = verify.Method + 1
		if err := client.Verify(ctx, &bad); err == nil {
			t.Errorf("Verify accepted AUTH method %d for data made with %d", bad.Method, verify.Method)
		}
	})
	t.Run("malformed requests", func(t *testing.T) {
		for name, req := range map[string]*auth.Request{
			"empty":        {},
			"no octets":    {PRF: c.Request.PRF, LocalID: c.Request.LocalID, RemoteID: c.Request.RemoteID},
			"unknown PRF":  {PRF: 0xffff, LocalID: c.Request.LocalID, RemoteID: c.Request.RemoteID, SignedOctets: []byte{1}},
			"odd identity": {PRF: c.Request.PRF, LocalID: auth.Identity{Type: 1, Data: []byte{1}}, RemoteID: auth.Identity{Type: 5}, SignedOctets: []byte{1}},
		} {
			_, err := client.Make(ctx, req)
			noPanic(t, "Make("+name+")", err)
			v := *req
			v.Method, v.Data = 2, []byte{1, 2, 3}
			err = client.Verify(ctx, &v)
			noPanic(t, "Verify("+name+")", err)
			if err == nil {
				t.Errorf("Verify(%s) accepted a malformed request", name)
			}
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for i := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i%2 == 0 {
					if err := client.Verify(ctx, verify); err != nil {
						errs <- fmt.Errorf("verify: %w", err)
					}
					return
				}
				if _, err := client.Make(ctx, c.Request); err != nil {
					errs <- fmt.Errorf("make: %w", err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}
