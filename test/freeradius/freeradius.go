// Package freeradius starts a real FreeRADIUS server (the Debian package)
// for tests: its own raddb under t.TempDir(), the eap module with EAP-MD5,
// EAP-MSCHAPv2 and EAP-TLS (test certificates made here), test users with
// cleartext passwords, on a free UDP port, in the foreground. The server is
// killed at cleanup and its debug log goes to t.Log when the test fails.
//
// To run it inside a network namespace, call Start from netns.NS.Do with
// Listen set to an address of that namespace.
package freeradius

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Binary is the FreeRADIUS daemon as Debian installs it.
const Binary = "/usr/sbin/freeradius"

// RejectMessage is the Reply-Message the server adds to every
// Access-Reject, so clients can show what the server said.
const RejectMessage = "veil test server: access denied"

// DefaultUsers are the users when Config.Users is nil.
var DefaultUsers = map[string]string{
	"alice": "alice-password-1",
	"bob":   "bob-password-2",
}

// Config shapes the server; the zero value is a server on 127.0.0.1 with
// DefaultUsers and a random secret.
type Config struct {
	Users  map[string]string // EAP identity -> cleartext password
	Secret string            // shared secret; "" for a random one
	Listen string            // address to listen on; "" for 127.0.0.1
	// Clients is the network the server takes requests from; "" for the
	// Listen address's /8 (IPv4) or /64 (IPv6).
	Clients string
	// TLSMaxVersion is the eap module's tls_max_version ("1.2", "1.3");
	// "" for "1.2", FreeRADIUS 3.2's default.
	TLSMaxVersion string
	// TLSClientName is the common name of the EAP-TLS client certificate;
	// "" for "alice".
	TLSClientName string
}

// Server is a running FreeRADIUS.
type Server struct {
	Addr   string // host:port of its authentication listener
	Secret string
	Dir    string // its raddb

	PKI

	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

// PKI is a test CA with a server and an EAP-TLS client certificate, as
// PEM files: the CA that issued both (FreeRADIUS trusts it for client
// certificates; EAP-TLS clients trust it for the server's), and each
// certificate with its PKCS #8 key (mode 0600).
type PKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

// NewPKI makes a PKI in a new temporary directory: the client
// certificate's common name is clientName, the server's radius.example.com.
// All keys are ECDSA P-256 (fast to make).
func NewPKI(t testing.TB, clientName string) *PKI {
	t.Helper()
	return writePKI(t, t.TempDir(), clientName)
}

// Require skips the test when FreeRADIUS is not installed (CI installs it
// in .ci/run).
func Require(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Skipf("needs FreeRADIUS (%s): apt-get install freeradius", Binary)
	}
}

// Start starts a server and waits until it takes requests.
func Start(t testing.TB, c Config) *Server {
	t.Helper()
	Require(t)
	if c.Users == nil {
		c.Users = DefaultUsers
	}
	if c.Secret == "" {
		var b [12]byte
		rand.Read(b[:])
		c.Secret = hex.EncodeToString(b[:])
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1"
	}
	if c.Clients == "" {
		if ip := net.ParseIP(c.Listen); ip != nil && ip.To4() == nil {
			c.Clients = (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
		} else if ip != nil {
			c.Clients = (&net.IPNet{IP: ip.Mask(net.CIDRMask(8, 32)), Mask: net.CIDRMask(8, 32)}).String()
		} else {
			t.Fatalf("freeradius: Listen %q is not an IP address", c.Listen)
		}
	}
	if c.TLSMaxVersion == "" {
		c.TLSMaxVersion = "1.2"
	}
	if c.TLSClientName == "" {
		c.TLSClientName = "alice"
	}
	s := &Server{Secret: c.Secret, Dir: t.TempDir()}
	s.PKI = *writePKI(t, s.Dir, c.TLSClientName)
	// A port found free may be taken before FreeRADIUS binds it (other
	// packages' tests run in parallel): try again with another.
	var lastErr error
	for range 5 {
		port, err := freePort(c.Listen)
		if err != nil {
			t.Fatalf("freeradius: %v", err)
		}
		s.writeConfig(t, c, port)
		if lastErr = s.run(t); lastErr == nil {
			s.Addr = net.JoinHostPort(c.Listen, strconv.Itoa(port))
			return s
		}
		if !strings.Contains(s.Log(), "Failed binding") && !strings.Contains(s.Log(), "in use") {
			break
		}
	}
	t.Fatalf("freeradius did not start: %v\n%s", lastErr, s.Log())
	return nil
}

// Log is the server's debug output so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func (s *Server) logLine(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.WriteString(line)
	s.log.WriteByte('\n')
}

// Stop kills the server (cleanup does it too); a test uses it to see a
// server that is down.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		<-s.done
	}
}

// run starts the daemon and waits for "Ready to process requests".
func (s *Server) run(t testing.TB) error {
	s.mu.Lock()
	s.log.Reset()
	s.mu.Unlock()
	// -X: debug to stdout, in the foreground, one thread.
	cmd := exec.Command(Binary, "-X", "-d", s.Dir, "-n", "radiusd")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd, s.done = cmd, make(chan struct{})
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		exited <- err
		close(s.done)
	}()
	ready, logged := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(logged)
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			s.logLine(sc.Text())
			if !signalled && strings.Contains(sc.Text(), "Ready to process requests") {
				signalled = true
				close(ready)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case <-ready:
		t.Cleanup(func() {
			s.Stop()
			if t.Failed() {
				t.Logf("freeradius log:\n%s", s.Log())
			}
		})
		return nil
	case err := <-exited:
		<-logged // all of its output, for the caller to read
		return fmt.Errorf("freeradius exited: %v", err)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("freeradius was not ready after 30s")
	}
}

func freePort(host string) (int, error) {
	c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// quote makes s a FreeRADIUS double-quoted string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func (s *Server) writeConfig(t testing.TB, c Config, port int) {
	t.Helper()
	d := s.Dir
	var users strings.Builder
	names := make([]string, 0, len(c.Users))
	for n := range c.Users {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&users, "%s Cleartext-Password := %s\n\n", quote(n), quote(c.Users[n]))
	}
	files := map[string]string{
		"radiusd.conf": `prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = ` + d + `
raddbdir = ` + d + `
radacctdir = ` + d + `
name = radiusd
confdir = ` + d + `
modconfdir = ` + d + `
certdir = ` + d + `
cadir = ` + d + `
run_dir = ` + d + `
db_dir = ` + d + `
libdir = /usr/lib/freeradius
pidfile = ` + d + `/radiusd.pid
max_request_time = 30
cleanup_delay = 1
max_requests = 1024
hostname_lookups = no
log {
	destination = stdout
	colourise = no
	auth = yes
	auth_badpass = no
	auth_goodpass = no
}
security {
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = no
}
proxy_requests = no
client test {
	ipaddr = ` + c.Clients + `
	secret = ` + quote(c.Secret) + `
	require_message_authenticator = yes
	nas_type = other
}
thread pool {
	start_servers = 1
	max_servers = 4
	min_spare_servers = 1
	max_spare_servers = 4
	max_requests_per_server = 0
}
modules {
	files {
		filename = ` + d + `/users
		acctusersfile = ` + d + `/users
		preproxy_usersfile = ` + d + `/users
	}
	pap {
		normalise = yes
	}
	mschap {
	}
	eap {
		default_eap_type = md5
		timer_expire = 60
		ignore_unknown_eap_types = no
		max_sessions = ${max_requests}
		md5 {
		}
		mschapv2 {
		}
		tls-config tls-common {
			private_key_file = ` + d + `/server.key
			certificate_file = ` + d + `/server.pem
			ca_file = ` + d + `/ca.pem
			cipher_list = "DEFAULT"
			tls_min_version = "1.2"
			tls_max_version = "` + c.TLSMaxVersion + `"
			ecdh_curve = ""
			cache {
				enable = no
			}
			verify {
			}
			ocsp {
				enable = no
			}
		}
		tls {
			tls = tls-common
		}
	}
}
server default {
	listen {
		type = auth
		ipaddr = ` + c.Listen + `
		port = ` + strconv.Itoa(port) + `
	}
	authorize {
		eap {
			ok = return
		}
		files
		mschap
		pap
	}
	authenticate {
		Auth-Type PAP {
			pap
		}
		Auth-Type MS-CHAP {
			mschap
		}
		eap
	}
	post-auth {
		Post-Auth-Type REJECT {
			update reply {
				Reply-Message := ` + quote(RejectMessage) + `
			}
			eap
		}
	}
}
`,
		"users":      users.String(),
		"dictionary": "",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(d, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func writePKI(t testing.TB, dir, clientName string) *PKI {
	t.Helper()
	pki := &PKI{}
	write := func(name, typ string, der []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "veil FreeRADIUS test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	pki.CA = write("ca.pem", "CERTIFICATE", caDER, 0o644)
	leaf := func(base, cn string, serial int64, eku x509.ExtKeyUsage) (string, string) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			DNSNames:  []string{cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{eku},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(base+".pem", "CERTIFICATE", der, 0o644), write(base+".key", "PRIVATE KEY", kder, 0o600)
	}
	pki.ServerCert, pki.ServerKey = leaf("server", "radius.example.com", 2, x509.ExtKeyUsageServerAuth)
	pki.ClientCert, pki.ClientKey = leaf("client", clientName, 3, x509.ExtKeyUsageClientAuth)
	return pki
}
