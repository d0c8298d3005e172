package pluginhost

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
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

func newCountingHost(t *testing.T) (*Host, *callCounter) {
	t.Helper()
	calls := &callCounter{}
	h, err := New(Options{Executable: os.Args[0], Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OnCall: calls.observe})
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
