package engine

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/veil-ipsec/veil/core/engine/enginetest"
	"github.com/veil-ipsec/veil/core/pluginhost"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transform"
	"github.com/veil-ipsec/veil/core/transport"
	"github.com/veil-ipsec/veil/core/ts"
	x509plugin "github.com/veil-ipsec/veil/plugins/auth/x509"
	"github.com/veil-ipsec/veil/plugins/keystore/file"
	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/dataplane"
	"github.com/veil-ipsec/veil/sdk/keystore"
)

// The benchmark re-executes the test binary as its plugins, as veild does
// with its bundled ones.
var benchBuiltins = pluginhost.Builtins{
	"auth/x509":      func() any { return x509plugin.New() },
	"keystore/file":  func() any { return file.New() },
	"dataplane/mock": func() any { return &dataplane.Mock{} },
}

func TestMain(m *testing.M) {
	if len(os.Args) == 4 && os.Args[1] == "plugin" {
		if err := pluginhost.ServeBuiltin(os.Args[2], os.Args[3], benchBuiltins); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// BenchmarkResponderPlugins is what plugin RPC costs a responder per
// handshake (issue 4: at most 5 %). One responder engine takes
// IKE_SA_INIT + IKE_AUTH (X25519, ECDSA P-256 certificates, one tunnel-mode
// Child SA) from 32 concurrent initiators, with its x509 auth plugin, file
// keystore and dataplane either in other processes (the test binary
// re-executed, as veild runs its bundled plugins) or called in-process.
// cpu-us/handshake is the CPU of every process (test binary, which also
// runs the in-process initiators, plus the plugins) per handshake.
// The Plugins case also reports its RPC count per handshake, and, run
// after InProcess, the difference (rpc-us) and its share of a responder's
// CPU (rpc-%): rpc-us / (InProcess/2 + rpc-us), half the in-process figure
// being the responder's part of a symmetric handshake.
//
//	go test -run '^$' -bench ResponderPlugins -benchtime 3000x -count 5 ./core/engine/
func BenchmarkResponderPlugins(b *testing.B) {
	pki := newBenchPKI(b)
	var inProcess float64
	b.Run("InProcess", func(b *testing.B) {
		inProcess = benchResponder(b, pki, false, false, false)
	})
	for _, tc := range []struct {
		name               string
		localSign, localDP bool
	}{{"Plugins", false, false}, {"PluginsLocalSign", true, false}, {"PluginsLocalSignDataplane", true, true}} {
		b.Run(tc.name, func(b *testing.B) {
			out := benchResponder(b, pki, true, tc.localSign, tc.localDP)
			if inProcess > 0 {
				rpc := out - inProcess
				b.ReportMetric(rpc, "rpc-us")
				b.ReportMetric(100*rpc/(inProcess/2+rpc), "rpc-%")
			}
		})
	}
}

// benchResponder runs b.N handshakes and returns CPU us per handshake.
// localSign has the host sign with the file keystore in its own process
// (pluginhost.Options.LocalKeystores); localDP calls the dataplane in
// process (to tell its share from the auth plugin's).
func benchResponder(b *testing.B, pki *benchPKI, plugins, localSign, localDP bool) float64 {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := transport.NewNetwork()
	n.SetAutoDeliver(true)
	respAddr := netip.MustParseAddr("192.0.2.1")

	var calls sync.Map // method -> *atomic.Int64
	count := func(kind, _, method string, _ time.Duration, _ error) {
		v, _ := calls.LoadOrStore(kind+"/"+method, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	var (
		dp       provider.Dataplane
		keys     provider.KeyStore
		verifier provider.Authenticator
	)
	if plugins {
		opts := pluginhost.Options{Executable: os.Args[0],
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OnCall: count}
		if localSign {
			opts.LocalKeystores = map[string]keystore.Store{"file": file.New()}
		}
		host, err := pluginhost.New(opts)
		if err != nil {
			b.Fatal(err)
		}
		defer host.Close()
		for _, p := range []struct {
			kind, name string
			cfg        cty.Value
		}{
			{"auth", "x509", cty.ObjectVal(map[string]cty.Value{
				"cacerts": cty.ListVal([]cty.Value{cty.StringVal(pki.caFile)}), "revocation": cty.StringVal("off")})},
			{"keystore", "file", cty.EmptyObjectVal},
			{"dataplane", "mock", cty.EmptyObjectVal},
		} {
			if err := host.Start(ctx, p.kind, p.name, ""); err != nil {
				b.Fatal(err)
			}
			if err := host.Configure(ctx, p.kind, p.name, p.cfg); err != nil {
				b.Fatal(err)
			}
		}
		d, err := host.Dataplane("mock")
		if err != nil {
			b.Fatal(err)
		}
		dp = d
		if localDP {
			dp = inprocDataplane{&dataplane.Mock{}}
		}
		if keys, err = host.KeyStore("file"); err != nil {
			b.Fatal(err)
		}
		if verifier, err = host.Authenticator("x509"); err != nil {
			b.Fatal(err)
		}
	} else {
		dp = inprocDataplane{&dataplane.Mock{}}
		keys = inprocKeyStore{file.New()}
		verifier = pki.inprocVerifier(b)
	}
	resp := pki.engine(b, n, respAddr, dp, keys, verifier, pki.respKey, pki.respChain, "responder.example", netip.Addr{})
	go resp.Run(ctx)

	lanes := benchLanes
	inits := make([]*Engine, lanes)
	for i := range inits {
		addr := netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)})
		inits[i] = pki.engine(b, n, addr, &enginetest.CountingDataplane{}, inprocKeyStore{file.New()},
			pki.inprocVerifier(b), pki.initKey, pki.initChain, "initiator.example", respAddr)
		go inits[i].Run(ctx)
	}
	handshake := func(e *Engine) error {
		w := &waiter{done: make(chan error, 1)}
		e.mu.Lock()
		_, err := e.initiateLocked(e.conns["bench"], "", w)
		e.mu.Unlock()
		if err != nil {
			return err
		}
		e.poke()
		select {
		case err := <-w.done:
			return err
		case <-time.After(time.Minute):
			return fmt.Errorf("handshake timed out")
		}
	}
	// Warm up: plugin streams open, caches filled.
	for _, e := range inits {
		if err := handshake(e); err != nil {
			b.Fatal(err)
		}
	}
	calls.Clear()
	cpu0, self0 := benchCPU(b)
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, e := range inits {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := handshake(e); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	cpu1, self1 := benchCPU(b)
	cpu := float64((cpu1 - cpu0).Microseconds()) / float64(b.N)
	b.ReportMetric(cpu, "cpu-us/handshake")
	if plugins {
		b.ReportMetric(float64((cpu1-cpu0-(self1-self0)).Microseconds())/float64(b.N), "plugin-cpu-us/handshake")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
	if plugins {
		var total int64
		calls.Range(func(k, v any) bool {
			n := v.(*atomic.Int64).Load()
			total += n
			b.Logf("%s: %.2f calls/handshake", k, float64(n)/float64(b.N))
			return true
		})
		b.ReportMetric(float64(total)/float64(b.N), "rpcs/handshake")
	}
	return cpu
}

// benchCPU is the CPU time of this process and its children (the plugins),
// and of this process alone, read from /proc: their CPU counts while they
// run.
func benchCPU(b *testing.B) (all, self time.Duration) {
	me := os.Getpid()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(raw)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ppid, _ := strconv.Atoi(f[1])
		if pid != me && ppid != me {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		d := time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ ticks
		all += d
		if pid == me {
			self += d
		}
	}
	return all, self
}

// benchPKI is a CA and two ECDSA P-256 end entities, in files as a
// deployment has them.
type benchPKI struct {
	caFile               string
	respKey, initKey     string // file: references
	respChain, initChain [][]byte
}

func newBenchPKI(b *testing.B) *benchPKI {
	dir := b.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		b.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &benchPKI{caFile: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		b.Fatal(err)
	}
	ee := func(name string, serial int64) (string, [][]byte) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			b.Fatal(err)
		}
		pk, _ := x509.MarshalPKCS8PrivateKey(k)
		path := filepath.Join(dir, name+".key")
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
			b.Fatal(err)
		}
		return "file:" + path, [][]byte{der}
	}
	p.respKey, p.respChain = ee("responder.example", 2)
	p.initKey, p.initChain = ee("initiator.example", 3)
	return p
}

func (p *benchPKI) inprocVerifier(b *testing.B) provider.Authenticator {
	x := x509plugin.New()
	if err := x.Configure(context.Background(), []byte(`{"cacerts":["`+p.caFile+`"],"revocation":"off"}`)); err != nil {
		b.Fatal(err)
	}
	return inprocAuth{x}
}

// engine builds an engine whose one connection "bench" authenticates both
// ways with certificates; with a remote address it is an initiator.
func (p *benchPKI) engine(b *testing.B, n *transport.Network, addr netip.Addr, dp provider.Dataplane, keys provider.KeyStore,
	verifier provider.Authenticator, keyRef string, chain [][]byte, id string, remote netip.Addr) *Engine {
	conn := n.Listen(netip.AddrPortFrom(addr, 500), netip.AddrPortFrom(addr, 4500))
	e, err := New(Config{Transport: conn, Dataplane: dp, KeyStore: keys, CookieThreshold: 1 << 30,
		Authenticators: map[string]provider.Authenticator{"pubkey": &benchPubkey{keys: keys, verify: verifier, ref: keyRef, chain: chain}}})
	if err != nil {
		b.Fatal(err)
	}
	c := Connection{Name: "bench", LocalAddrs: []netip.Addr{addr},
		IKEProposals: mustProposals(b, transform.ProtoIKE, "aes128gcm16-prfsha256-x25519"),
		Local:        AuthConfig{Method: "pubkey", ID: provider.Identity{Type: 2, Data: []byte(id)}, Key: keyRef},
		Remote:       AuthConfig{Method: "pubkey"},
		Children: []Child{{Name: "c1", Mode: provider.Tunnel, ESPProposals: mustProposals(b, transform.ProtoESP, "aes128gcm16"),
			LocalTS: []provider.TrafficSelector{ts.MustParse("10.0.0.0/16")}, RemoteTS: []provider.TrafficSelector{ts.Dynamic()}}},
	}
	if remote.IsValid() {
		c.RemoteAddrs = []netip.Addr{remote}
		c.Children[0].LocalTS, c.Children[0].RemoteTS = []provider.TrafficSelector{ts.Dynamic()}, []provider.TrafficSelector{ts.MustParse("10.0.0.0/16")}
	}
	e.SetConnections([]Connection{c})
	return e
}

// benchPubkey is veild's "pubkey" authenticator (core/daemon): the keystore
// signs, the x509 plugin checks the peer.
type benchPubkey struct {
	keys   provider.KeyStore
	verify provider.Authenticator
	ref    string
	chain  [][]byte
}

func (p *benchPubkey) Make(ctx context.Context, req *provider.AuthRequest) (*provider.AuthResult, error) {
	signer, err := p.keys.Signer(ctx, p.ref)
	if err != nil {
		return nil, err
	}
	hash, err := x509plugin.ChooseHash(signer.Public(), req.SignatureHashes)
	if err != nil {
		return nil, err
	}
	data, method, err := x509plugin.SignedAuthData(signer, req.SignedOctets, hash)
	if err != nil {
		return nil, err
	}
	return &provider.AuthResult{Method: method, Data: data, Certs: p.chain}, nil
}

func (p *benchPubkey) Verify(ctx context.Context, req *provider.AuthRequest) error {
	return p.verify.Verify(ctx, req)
}

// In-process adapters: the same plugin code called directly.

type inprocAuth struct{ a auth.Authenticator }

func (a inprocAuth) Make(ctx context.Context, r *provider.AuthRequest) (*provider.AuthResult, error) {
	res, err := a.a.Make(ctx, authReq(r))
	if err != nil {
		return nil, err
	}
	return &provider.AuthResult{Method: res.Method, Data: res.Data, Certs: res.Certs}, nil
}

func (a inprocAuth) Verify(ctx context.Context, r *provider.AuthRequest) error {
	return a.a.Verify(ctx, authReq(r))
}

func authReq(r *provider.AuthRequest) *auth.Request {
	return &auth.Request{Connection: r.Connection, Role: auth.Role(r.Role),
		LocalID:  auth.Identity{Type: r.LocalID.Type, Data: r.LocalID.Data},
		RemoteID: auth.Identity{Type: r.RemoteID.Type, Data: r.RemoteID.Data},
		PRF:      r.PRF, SignedOctets: r.SignedOctets, Method: r.Method, Data: r.Data, Certs: r.Certs,
		SignatureHashes: r.SignatureHashes}
}

type inprocKeyStore struct{ s keystore.Store }

func (k inprocKeyStore) Secret(ctx context.Context, ref string) ([]byte, error) {
	return k.s.Secret(ctx, ref)
}

func (k inprocKeyStore) Signer(ctx context.Context, ref string) (crypto.Signer, error) {
	pub, err := k.s.Public(ctx, ref)
	if err != nil {
		return nil, err
	}
	return inprocSigner{k.s, ref, pub}, nil
}

type inprocSigner struct {
	s   keystore.Store
	ref string
	pub crypto.PublicKey
}

func (s inprocSigner) Public() crypto.PublicKey { return s.pub }

func (s inprocSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.s.Sign(context.Background(), s.ref, digest, keystore.OptionsFrom(opts))
}

type inprocDataplane struct{ d dataplane.Dataplane }

func (d inprocDataplane) AllocateSPI(ctx context.Context, src, dst netip.Addr) (uint32, error) {
	return d.d.AllocateSPI(ctx, src, dst)
}

func (d inprocDataplane) InstallSA(ctx context.Context, sa *provider.ChildSA) error {
	x := &dataplane.ChildSA{ReqID: sa.ReqID, SPI: sa.SPI, Inbound: sa.Inbound, Src: sa.Src, Dst: sa.Dst,
		Mode: dataplane.Mode(sa.Mode), Encryption: sa.Encryption, EncKey: append([]byte(nil), sa.EncKey...),
		Integrity: sa.Integrity, IntegKey: append([]byte(nil), sa.IntegKey...), ESN: sa.ESN, ReplayWindow: sa.ReplayWindow}
	return d.d.InstallSA(ctx, x)
}

func (d inprocDataplane) DeleteSA(ctx context.Context, k provider.SAKey) error {
	return d.d.DeleteSA(ctx, dataplane.SAKey(k))
}

func (d inprocDataplane) InstallPolicy(ctx context.Context, p *provider.Policy) error {
	return d.d.InstallPolicy(ctx, &dataplane.Policy{ReqID: p.ReqID, Dir: dataplane.Direction(p.Dir),
		Action: dataplane.PolicyAction(p.Action), Local: dataplane.TrafficSelector(p.Local),
		Remote: dataplane.TrafficSelector(p.Remote), Mode: dataplane.Mode(p.Mode), TmplSrc: p.TmplSrc, TmplDst: p.TmplDst})
}

func (d inprocDataplane) DeletePolicy(ctx context.Context, p *provider.Policy) error { return nil }

func (d inprocDataplane) Counters(ctx context.Context, keys []provider.SAKey) ([]provider.Counters, error) {
	return make([]provider.Counters, len(keys)), nil
}

func (d inprocDataplane) Events(ctx context.Context) (<-chan provider.Event, error) {
	ch := make(chan provider.Event)
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}

var benchLanes = func() int {
	n, err := strconv.Atoi(os.Getenv("VEIL_BENCH_LANES"))
	if err != nil || n < 1 {
		return 32
	}
	return n
}()
