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
	mu  sync.Mutex
	bin string
	dir string
}

// Binary builds the dev server, once until Cleanup, and returns its path.
func Binary() (string, error) {
	build.mu.Lock()
	defer build.mu.Unlock()
	if build.bin != "" {
		return build.bin, nil
	}
	_, self, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(self), "devserver")
	dir, err := os.MkdirTemp("", "veil-vaultdev-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "devserver")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = src
	// The module's own go.mod and go.sum decide; a workspace or vendor
	// setting of the caller's must not.
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("building the Vault dev server in %s: %v\n%s", src, err, out)
	}
	build.bin, build.dir = bin, dir
	return bin, nil
}

// Cleanup removes the built binary (call it from TestMain after m.Run, or
// from the last test's t.Cleanup); a later Start builds it again.
func Cleanup() {
	build.mu.Lock()
	defer build.mu.Unlock()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	build.bin, build.dir = "", ""
}

// Start runs a fresh, empty server (nothing mounted) on 127.0.0.1 for the
// test; it stops when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartOn(t, "127.0.0.1:0")
}

// StartTLS is Start serving HTTPS with the certificate and key files given;
// the root client trusts the CA certificates in caFile.
func StartTLS(t testing.TB, certFile, keyFile, caFile string) *Server {
	t.Helper()
	s := start(t, "-listen", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", keyFile)
	cfg := s.API.CloneConfig()
	if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: caFile}); err != nil {
		t.Fatal(err)
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(s.Token)
	s.API = c
	return s
}

// StartOn is Start listening on listen: "127.0.0.1:0", or "unix:/path" for a
// unix socket (reachable from any network namespace, as veild in one is).
func StartOn(t testing.TB, listen string) *Server {
	t.Helper()
	return start(t, "-listen", listen)
}

func start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	token := "root-" + hex.EncodeToString(tok)
	cmd := exec.Command(bin, append([]string{"-token", token}, args...)...)
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
