package engine

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
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
	if mode := os.Getenv("VEIL_BENCH_RESPONDER"); mode != "" {
		if err := runBenchResponder(mode); err != nil {
			fmt.Fprintln(os.Stderr, "bench responder:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// BenchmarkResponderPlugins is what plugin RPC costs a responder per
// handshake (issue 4: at most 5 %). A responder engine in a process of its
// own (the test binary re-executed) takes IKE_SA_INIT + IKE_AUTH (X25519,
// ECDSA P-256 certificates both ways, one tunnel-mode Child SA) over UDP on
// 127.0.0.1 from 32 concurrent initiators in the test process. Its x509
// auth plugin, file keystore and dataplane (sdk/dataplane's Mock: what it
// costs is RPC) are called in its process (InProcess) or run as plugin
// processes, the binary re-executed again as veild runs its bundled ones
// (Plugins); PluginsLocalSign signs with the file keystore in the
// responder (pluginhost.Options.LocalKeystores); PluginsLocalSignDataplane
// also calls the dataplane in process, leaving only the x509 check out.
// cpu-us/handshake is the CPU of the responder and its plugins
// (/proc/<pid>/stat); rpc-us the difference to InProcess (run first) and
// rpc-% its share of the responder's CPU.
//
//	go test -run '^$' -bench ResponderPlugins -benchtime 4000x -count 3 ./core/engine/
func BenchmarkResponderPlugins(b *testing.B) {
	dir := b.TempDir()
	if err := writeBenchPKI(dir); err != nil {
		b.Fatal(err)
	}
	var inProcess float64
	for _, mode := range []string{"InProcess", "Plugins", "PluginsLocalSign", "PluginsLocalSignDataplane"} {
		b.Run(mode, func(b *testing.B) {
			cpu := benchResponder(b, dir, mode)
			if mode == "InProcess" {
				inProcess = cpu
			} else if inProcess > 0 {
				b.ReportMetric(cpu-inProcess, "rpc-us")
				b.ReportMetric(100*(cpu-inProcess)/cpu, "rpc-%")
			}
		})
	}
}

// benchResponder starts the responder process in mode, runs b.N handshakes
// against it and returns the responder's CPU us per handshake.
func benchResponder(b *testing.B, dir, mode string) float64 {
	ports, err := freeUDPPorts(2 * (benchLanes + 1))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "VEIL_BENCH_RESPONDER="+mode, "VEIL_BENCH_DIR="+dir,
		fmt.Sprintf("VEIL_BENCH_PORTS=%d,%d", ports[0], ports[1]))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	out := bufio.NewScanner(stdout)
	if !out.Scan() || out.Text() != "ready" {
		b.Fatalf("responder process: %q %v", out.Text(), out.Err())
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lo := netip.MustParseAddr("127.0.0.1")
	inits := make([]*Engine, benchLanes)
	for i := range inits {
		e, err := benchEngine(dir, "initiator", lo, ports[2+2*i], ports[3+2*i], ports[0], &enginetest.CountingDataplane{},
			inprocKeyStore{file.New()}, nil)
		if err != nil {
			b.Fatal(err)
		}
		inits[i] = e
		go e.Run(ctx)
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
	// Warm up: plugin streams open, caches and pools filled.
	for range 3 {
		for _, e := range inits {
			if err := handshake(e); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := io.WriteString(stdin, "reset\n"); err != nil || !out.Scan() {
		b.Fatal("responder process did not reset its counters")
	}
	pid := cmd.Process.Pid
	cpu0 := treeCPU(pid)
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
	cpu1 := treeCPU(pid)
	cpu := float64((cpu1.all - cpu0.all).Microseconds()) / float64(b.N)
	b.ReportMetric(cpu, "cpu-us/handshake")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
	if mode != "InProcess" {
		b.ReportMetric(float64((cpu1.plugins-cpu0.plugins).Microseconds())/float64(b.N), "plugin-cpu-us/handshake")
	}
	// The responder tells what it called.
	if _, err := io.WriteString(stdin, "calls\n"); err != nil || !out.Scan() {
		b.Fatal("responder process did not report its calls")
	}
	var calls map[string]int64
	if err := json.Unmarshal(out.Bytes(), &calls); err != nil {
		b.Fatal(err)
	}
	var total int64
	for k, n := range calls {
		total += n
		b.Logf("%s: %.2f calls/handshake", k, float64(n)/float64(b.N))
	}
	b.ReportMetric(float64(total)/float64(b.N), "rpcs/handshake")
	return cpu
}

// runBenchResponder is the responder process: it serves handshakes on the
// ports in VEIL_BENCH_PORTS until stdin ends, answering "reset" (zero the
// call counts) and "calls" (print them as JSON) lines.
func runBenchResponder(mode string) error {
	dir := os.Getenv("VEIL_BENCH_DIR")
	var port, natPort uint16
	if _, err := fmt.Sscanf(os.Getenv("VEIL_BENCH_PORTS"), "%d,%d", &port, &natPort); err != nil {
		return err
	}
	var calls sync.Map // method -> *atomic.Int64
	count := func(kind, _, method string, _ time.Duration, _ error) {
		v, _ := calls.LoadOrStore(kind+"/"+method, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	ctx := context.Background()
	var (
		dp       provider.Dataplane = inprocDataplane{&dataplane.Mock{}}
		keys     provider.KeyStore  = inprocKeyStore{file.New()}
		verifier provider.Authenticator
	)
	if mode == "InProcess" {
		x := x509plugin.New()
		if err := x.Configure(ctx, []byte(`{"cacerts":["`+filepath.Join(dir, "ca.pem")+`"],"revocation":"off"}`)); err != nil {
			return err
		}
		verifier = inprocAuth{x}
	} else {
		opts := pluginhost.Options{Executable: os.Args[0], Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), OnCall: count}
		if mode != "Plugins" {
			opts.LocalKeystores = map[string]keystore.Store{"file": file.New()}
		}
		host, err := pluginhost.New(opts)
		if err != nil {
			return err
		}
		defer host.Close()
		for _, p := range []struct {
			kind, name string
			cfg        cty.Value
		}{
			{"auth", "x509", cty.ObjectVal(map[string]cty.Value{
				"cacerts": cty.ListVal([]cty.Value{cty.StringVal(filepath.Join(dir, "ca.pem"))}), "revocation": cty.StringVal("off")})},
			{"keystore", "file", cty.EmptyObjectVal},
			{"dataplane", "mock", cty.EmptyObjectVal},
		} {
			if err := host.Start(ctx, p.kind, p.name, ""); err != nil {
				return err
			}
			if err := host.Configure(ctx, p.kind, p.name, p.cfg); err != nil {
				return err
			}
		}
		if mode != "PluginsLocalSignDataplane" {
			if dp, err = host.Dataplane("mock"); err != nil {
				return err
			}
		}
		if keys, err = host.KeyStore("file"); err != nil {
			return err
		}
		if verifier, err = host.Authenticator("x509"); err != nil {
			return err
		}
	}
	lo := netip.MustParseAddr("127.0.0.1")
	e, err := benchEngine(dir, "responder", lo, port, natPort, 0, dp, keys, verifier)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go e.Run(runCtx)
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "reset":
			calls.Clear()
			fmt.Println("ok")
		case "calls":
			m := map[string]int64{}
			calls.Range(func(k, v any) bool { m[k.(string)] = v.(*atomic.Int64).Load(); return true })
			js, _ := json.Marshal(m)
			fmt.Println(string(js))
		}
	}
	return nil
}

// freeUDPPorts finds n UDP ports free on 127.0.0.1 now.
func freeUDPPorts(n int) ([]uint16, error) {
	var conns []*net.UDPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	ports := make([]uint16, n)
	for i := range ports {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		ports[i] = uint16(c.LocalAddr().(*net.UDPAddr).Port)
	}
	return ports, nil
}

type cpuTimes struct{ all, plugins time.Duration }

// treeCPU is the CPU time of pid and of its children (the plugins), read
// from /proc: their CPU counts while they run.
func treeCPU(pid int) cpuTimes {
	var t cpuTimes
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		p, err := strconv.Atoi(d.Name())
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
		if p != pid && ppid != pid {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		c := time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ ticks
		t.all += c
		if p != pid {
			t.plugins += c
		}
	}
	return t
}

// writeBenchPKI writes a CA and two ECDSA P-256 end entities into dir,
// as a deployment has them: ca.pem, <role>.key (PEM) and <role>.der.
func writeBenchPKI(dir string) error {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		return err
	}
	for i, role := range []string{"responder", "initiator"} {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: role + ".example"},
			DNSNames: []string{role + ".example"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			return err
		}
		pk, _ := x509.MarshalPKCS8PrivateKey(k)
		if err := os.WriteFile(filepath.Join(dir, role+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, role+".der"), der, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// benchEngine builds an engine on UDP addr:port/natPort whose connection
// "bench" authenticates both ways with role's certificate; with a remote
// port it initiates to 127.0.0.1:remotePort. A nil verifier is the x509
// plugin in process.
func benchEngine(dir, role string, addr netip.Addr, port, natPort, remotePort uint16, dp provider.Dataplane,
	keys provider.KeyStore, verifier provider.Authenticator) (*Engine, error) {
	if verifier == nil {
		x := x509plugin.New()
		if err := x.Configure(context.Background(), []byte(`{"cacerts":["`+filepath.Join(dir, "ca.pem")+`"],"revocation":"off"}`)); err != nil {
			return nil, err
		}
		verifier = inprocAuth{x}
	}
	der, err := os.ReadFile(filepath.Join(dir, role+".der"))
	if err != nil {
		return nil, err
	}
	conn, err := transport.ListenUDP(transport.UDPConfig{Addrs: []netip.Addr{addr}, Port: port, NATPort: natPort})
	if err != nil {
		return nil, err
	}
	keyRef := "file:" + filepath.Join(dir, role+".key")
	e, err := New(Config{Transport: conn, Port: port, NATPort: natPort, Dataplane: dp, KeyStore: keys, CookieThreshold: 1 << 30,
		Authenticators: map[string]provider.Authenticator{"pubkey": &benchPubkey{keys: keys, verify: verifier, ref: keyRef, chain: [][]byte{der}}}})
	if err != nil {
		conn.Close()
		return nil, err
	}
	ike, err := transform.ParseProposal(transform.ProtoIKE, "aes128gcm16-prfsha256-x25519")
	if err != nil {
		return nil, err
	}
	esp, err := transform.ParseProposal(transform.ProtoESP, "aes128gcm16")
	if err != nil {
		return nil, err
	}
	c := Connection{Name: "bench", LocalAddrs: []netip.Addr{addr}, IKEProposals: []transform.Proposal{ike},
		Local:  AuthConfig{Method: "pubkey", ID: provider.Identity{Type: 2, Data: []byte(role + ".example")}, Key: keyRef},
		Remote: AuthConfig{Method: "pubkey"},
		Children: []Child{{Name: "c1", Mode: provider.Tunnel, ESPProposals: []transform.Proposal{esp},
			LocalTS: []provider.TrafficSelector{ts.MustParse("10.0.0.0/16")}, RemoteTS: []provider.TrafficSelector{ts.Dynamic()}}},
	}
	if remotePort != 0 {
		c.RemoteAddrs, c.RemotePort = []netip.Addr{addr}, remotePort
		c.Children[0].LocalTS, c.Children[0].RemoteTS = []provider.TrafficSelector{ts.Dynamic()}, []provider.TrafficSelector{ts.MustParse("10.0.0.0/16")}
	}
	e.SetConnections([]Connection{c})
	return e, nil
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
