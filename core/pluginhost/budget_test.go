package pluginhost

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/plugins/keystore/file"
	"github.com/veil-ipsec/veil/sdk/dataplane"
	"github.com/veil-ipsec/veil/sdk/keystore"
)

// callCounter counts plugin calls by "kind/method" (Options.OnCall).
type callCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *callCounter) observe(kind, _, method string, _ time.Duration, _ error) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[kind+"/"+method]++
	c.mu.Unlock()
}

func (c *callCounter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

func newCountingHost(t *testing.T, local ...map[string]keystore.Store) (*Host, *callCounter) {
	t.Helper()
	calls := &callCounter{}
	opts := Options{Executable: os.Args[0], Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OnCall: calls.observe}
	if len(local) > 0 {
		opts.LocalKeystores = local[0]
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, calls
}

func writeECKey(t *testing.T, path string) *ecdsa.PrivateKey {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return key
}

// A handshake's Signer costs no round trip: the public key is fetched once
// per plugin process and configuration, and again after a Configure (a
// reload may have replaced the key file).
func TestSignerPublicKeyCached(t *testing.T) {
	h, calls := newCountingHost(t)
	ctx := context.Background()
	if err := h.Start(ctx, "keystore", "file", ""); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	key := writeECKey(t, path)
	ks, err := h.KeyStore("file")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s, err := ks.Signer(ctx, "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		if !key.PublicKey.Equal(s.Public()) {
			t.Fatal("Public differs from the key in the file")
		}
	}
	if n := calls.get("keystore/public"); n != 1 {
		t.Errorf("%d public key fetches for three Signers of one key, want 1", n)
	}
	key2 := writeECKey(t, path)
	if err := h.Configure(ctx, "keystore", "file", cty.EmptyObjectVal); err != nil {
		t.Fatal(err)
	}
	s, err := ks.Signer(ctx, "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if !key2.PublicKey.Equal(s.Public()) {
		t.Error("after Configure the Signer still has the old public key")
	}
	if _, err := ks.Signer(ctx, "file:/nonexistent/key.pem"); err == nil {
		t.Error("Signer of a missing key file succeeded")
	}
}

// With the file keystore in LocalKeystores, veild signs in its own process:
// no plugin call per signature, the key file's current key after a
// Configure, and secrets still from the plugin.
func TestLocalKeystoreSigns(t *testing.T) {
	h, calls := newCountingHost(t, map[string]keystore.Store{"file": file.New()})
	ctx := context.Background()
	if err := h.Start(ctx, "keystore", "file", ""); err != nil {
		t.Fatal(err)
	}
	if err := h.Configure(ctx, "keystore", "file", cty.EmptyObjectVal); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "key.pem")
	ks, _ := h.KeyStore("file")
	digest := sha256.Sum256([]byte("signed octets"))
	for range 2 {
		key := writeECKey(t, path)
		if err := h.Configure(ctx, "keystore", "file", cty.EmptyObjectVal); err != nil {
			t.Fatal(err)
		}
		s, err := ks.Signer(ctx, "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.VerifyASN1(&key.PublicKey, digest[:], sig) || !key.PublicKey.Equal(s.Public()) {
			t.Fatal("signature or public key is not the key file's current key")
		}
	}
	if n := calls.get("keystore/sign") + calls.get("keystore/public"); n != 0 {
		t.Errorf("%d keystore plugin calls for local signatures, want 0", n)
	}
	secretPath := filepath.Join(dir, "psk")
	if err := os.WriteFile(secretPath, []byte("a secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if sec, err := ks.Secret(ctx, "file:"+secretPath); err != nil || string(sec) != "a secret" {
		t.Fatalf("Secret = %q, %v", sec, err)
	}
	if calls.get("keystore/secret") != 1 {
		t.Error("Secret did not go to the plugin")
	}
	if _, err := ks.Signer(ctx, "file:"+filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("Signer of a missing key file: %v", err)
	}
}

// A child's SAs and policies reach the plugin in one InstallChild, all or
// none: with a protocol version 2 plugin as one streamed call, with a
// version 1 plugin (built with an older SDK) as unary calls in order.
func TestInstallChildBothVersions(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		version int
	}{{"dataplane", 2}, {"dataplane-v1", 1}} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Setenv("VEIL_TESTPLUGIN", tc.mode)
			h, calls := newCountingHost(t)
			ctx := context.Background()
			if err := h.Start(ctx, "dataplane", "test", testPluginBin); err != nil {
				t.Fatal(err)
			}
			state := filepath.Join(t.TempDir(), "state.json")
			if err := h.Configure(ctx, "dataplane", "test", cty.ObjectVal(map[string]cty.Value{"state_file": cty.StringVal(state)})); err != nil {
				t.Fatal(err)
			}
			inst, _ := h.instance("dataplane", "test")
			kc, err := inst.current()
			if err != nil {
				t.Fatal(err)
			}
			if v := kc.(*dataplane.Client).Version(); v != tc.version {
				t.Fatalf("negotiated protocol version %d, want %d", v, tc.version)
			}
			dp, _ := h.Dataplane("test")
			local, remote := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
			child := func(reqID uint32) ([]*provider.ChildSA, []*provider.Policy) {
				spiIn, err := dp.AllocateSPI(ctx, remote, local)
				if err != nil {
					t.Fatal(err)
				}
				sa := func(spi uint32, src, dst netip.Addr, in bool) *provider.ChildSA {
					return &provider.ChildSA{ReqID: reqID, SPI: spi, Inbound: in, Src: src, Dst: dst, Mode: provider.Tunnel,
						Encryption: "aes-gcm-16", EncKey: bytes.Repeat([]byte{7}, 20)}
				}
				l, r := provider.TrafficSelector{Start: netip.MustParseAddr("10.1.0.0"), End: netip.MustParseAddr("10.1.255.255"), EndPort: 65535},
					provider.TrafficSelector{Start: netip.MustParseAddr("10.2.0.0"), End: netip.MustParseAddr("10.2.0.0"), EndPort: 65535}
				var pols []*provider.Policy
				for _, d := range []provider.Direction{provider.Out, provider.In, provider.Fwd} {
					pols = append(pols, &provider.Policy{ReqID: reqID, Dir: d, Action: provider.Protect, Local: l, Remote: r,
						Mode: provider.Tunnel, TmplSrc: local, TmplDst: remote})
				}
				return []*provider.ChildSA{sa(spiIn, remote, local, true), sa(0x10000+reqID, local, remote, false)}, pols
			}
			sas, pols := child(1)
			if err := dp.InstallChild(ctx, sas, pols); err != nil {
				t.Fatal(err)
			}
			gotSAs, gotPols := dataplaneState(t, state)
			sort.Strings(gotSAs)
			if len(gotSAs) != 2 || gotPols != 3 {
				t.Fatalf("plugin has SAs %v and %d policies, want 2 and 3", gotSAs, gotPols)
			}
			if n, p := dp.Installed(); n != 2 || p != 3 {
				t.Errorf("host recorded %d SAs and %d policies, want 2 and 3", n, p)
			}
			// A refused policy: the plugin keeps nothing of that child, and
			// neither does the host's record (so a restart does not bring
			// it back).
			sas, pols = child(666)
			pols[0].Local.Start = netip.MustParseAddr("10.3.0.0") // not to replace child 1's policies
			err = dp.InstallChild(ctx, sas, pols)
			if err == nil || !strings.Contains(err.Error(), "policy refused by the test plugin") {
				t.Fatalf("InstallChild with a refused policy: %v", err)
			}
			if s, p := dataplaneState(t, state); !slices.Equal(sorted(s), gotSAs) || p != 3 {
				t.Errorf("after a refused child the plugin has SAs %v and %d policies, want %v and 3", s, p, gotSAs)
			}
			if n, p := dp.Installed(); n != 2 || p != 3 {
				t.Errorf("after a refused child the host recorded %d SAs and %d policies, want 2 and 3", n, p)
			}
			if n := calls.get("dataplane/install child"); n != 2 {
				t.Errorf("%d install child calls, want 2", n)
			}
		})
	}
}

// A dataplane plugin of an unknown protocol version does not start, and
// the error names its version and the ones veild speaks.
func TestDataplaneVersionMismatch(t *testing.T) {
	t.Setenv("VEIL_TESTPLUGIN", "dataplane-v3")
	h, _ := newCountingHost(t)
	err := h.Start(context.Background(), "dataplane", "future", testPluginBin)
	if err == nil {
		t.Fatal("a dataplane plugin of protocol version 3 started")
	}
	for _, want := range []string{"Plugin version: 3", "versions 1 and 2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}

// With a version 2 plugin, SPIs come from a pool filled ahead off the
// engine's path: distinct, valid, installable for any peer of the local
// address; the ones left unused too long go back to the plugin.
func TestSPIPool(t *testing.T) {
	t.Setenv("VEIL_TESTPLUGIN", "dataplane")
	h, calls := newCountingHost(t)
	ctx := context.Background()
	if err := h.Start(ctx, "dataplane", "test", testPluginBin); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.json")
	if err := h.Configure(ctx, "dataplane", "test", cty.ObjectVal(map[string]cty.Value{"state_file": cty.StringVal(state)})); err != nil {
		t.Fatal(err)
	}
	dp, _ := h.Dataplane("test")
	var mu sync.Mutex
	clock := time.Now()
	dp.spis.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	local := netip.MustParseAddr("192.0.2.1")
	seen := map[uint32]bool{}
	for i := range 200 {
		peer := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		spi, err := dp.AllocateSPI(ctx, peer, local)
		if err != nil {
			t.Fatal(err)
		}
		if spi < 256 || seen[spi] {
			t.Fatalf("SPI %#x: reserved or handed out twice", spi)
		}
		seen[spi] = true
		if i%50 == 0 {
			sa := &provider.ChildSA{ReqID: uint32(i + 1), SPI: spi, Inbound: true, Src: peer, Dst: local, Mode: provider.Tunnel,
				Encryption: "aes-gcm-16", EncKey: bytes.Repeat([]byte{7}, 20)}
			if err := dp.InstallChild(ctx, []*provider.ChildSA{sa}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, _ := dataplaneState(t, state); len(n) != 4 {
		t.Errorf("plugin has %d SAs, want 4", len(n))
	}
	ahead := calls.get("dataplane/allocate SPI ahead")
	if ahead == 0 {
		t.Fatal("no SPI was allocated ahead")
	}
	t.Logf("%d SPIs: %d batches allocated ahead, %d on demand", len(seen), ahead, calls.get("dataplane/allocate SPI"))
	// Nothing allocated ahead is used after spiMaxAge: it is released.
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
		}
	}
	waitFor("the pool did not fill", func() bool {
		dp.spis.mu.Lock()
		defer dp.spis.mu.Unlock()
		return !dp.spis.filling[local] && len(dp.spis.free[local]) > 0
	})
	dp.spis.mu.Lock()
	pooled := len(dp.spis.free[local])
	dp.spis.mu.Unlock()
	mu.Lock()
	clock = clock.Add(spiMaxAge + time.Second)
	mu.Unlock()
	if _, err := dp.AllocateSPI(ctx, local, local); err != nil {
		t.Fatal(err)
	}
	waitFor(fmt.Sprintf("%d stale SPIs were not released", pooled), func() bool { return calls.get("dataplane/release SPI") >= pooled })
}
