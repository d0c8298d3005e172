// Package vaulttest runs a real HashiCorp Vault server for tests: the
// in-memory dev server in ./devserver, a module of its own (so Vault's
// dependencies stay out of veil's go.mod), built from the Go module proxy on
// first use. A cold build takes minutes (CI warms the build cache in
// .ci/run); with the cache warm it is a relink of a few seconds.
package vaulttest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Server is a running dev server.
type Server struct {
	Addr  string      // http://127.0.0.1:PORT
	Token string      // root token
	API   *api.Client // with the root token
}

var build struct {
	once sync.Once
	bin  string
	dir  string
	err  error
}

// Binary builds the dev server once per test process and returns its path.
func Binary() (string, error) {
	build.once.Do(func() {
		_, self, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(self), "devserver")
		build.dir, build.err = os.MkdirTemp("", "veil-vaultdev-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "devserver")
		cmd := exec.Command("go", "build", "-o", build.bin, ".")
		cmd.Dir = src
		// The module's own go.mod and go.sum decide; a workspace or vendor
		// setting of the caller's must not.
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("building the Vault dev server in %s: %v\n%s", src, err, out)
		}
	})
	return build.bin, build.err
}

// Cleanup removes the built binary; call it from TestMain after m.Run.
func Cleanup() {
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
}

// Start runs a fresh, empty server (nothing mounted) for the test; it stops
// when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	token := "root-" + hex.EncodeToString(tok)
	cmd := exec.Command(bin, "-token", token)
	stdin, err := cmd.StdinPipe() // the server stops when this closes
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &lockedWriter{w: &stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "VAULT_ADDR="); ok {
				addr <- a
			}
		}
		io.Copy(io.Discard, stdout)
		close(addr)
	}()
	a, ok := <-addr
	if !ok {
		cmd.Wait()
		t.Fatalf("the Vault dev server exited before serving: %s", stderr.String())
	}
	cfg := api.DefaultConfig()
	cfg.Address = a
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return &Server{Addr: a, Token: token, API: c}
}

// Write writes data to path with the root token, failing the test on error.
func (s *Server) Write(t testing.TB, path string, data map[string]any) *api.Secret {
	t.Helper()
	sec, err := s.API.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("vault write %s: %v", path, err)
	}
	return sec
}

// Mount enables a secrets engine ("transit", or "kv" with version 2) at path.
func (s *Server) Mount(t testing.TB, path, typ string, options map[string]string) {
	t.Helper()
	if err := s.API.Sys().Mount(path, &api.MountInput{Type: typ, Options: options}); err != nil {
		t.Fatalf("vault mount %s (%s): %v", path, typ, err)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
