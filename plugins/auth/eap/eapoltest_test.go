package eap

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/veil-ipsec/veil/sdk/auth"
)

// hostapd's EAP peer (eapol_test, Debian package eapoltest) against veil's
// EAP server: eapol_test speaks RADIUS, so a small RADIUS front end in
// this test hands each EAP-Message to a veil server session and returns
// its answers, with the MSK in MS-MPPE keys on Access-Accept, which
// eapol_test compares with the MSK its own peer derived.

func TestEAPOLTest(t *testing.T) {
	bin, err := exec.LookPath("eapol_test")
	if err != nil {
		t.Skip("eapol_test not installed (Debian package eapoltest)")
	}
	pki := newPKI(t, false)
	srv := configure(t, Config{
		Users:    map[string]string{"alice": writeSecret(t, "alice", "alice's password")},
		AllowMD5: true,
		Connections: map[string]ConnConfig{"s": {
			Method: "eap", Certificate: pki.serverCert, Key: pki.serverKey, CACerts: []string{pki.ca}}},
	})
	clientKey := strings.TrimPrefix(pki.clientKey, "file:")
	other := newPKI(t, false)
	// RSA certificates make every TLS flight span several EAP fragments;
	// fragment_size makes hostapd fragment its own flights too.
	big := newPKI(t, true)
	srvRSA := configure(t, Config{Connections: map[string]ConnConfig{"s": {
		Method: "eap-tls", Certificate: big.serverCert, Key: big.serverKey, CACerts: []string{big.ca}}}})
	bigTLS := fmt.Sprintf("eap=TLS\nidentity=\"alice\"\nca_cert=%q\nclient_cert=%q\nprivate_key=%q\nfragment_size=400", big.ca, big.clientCert, strings.TrimPrefix(big.clientKey, "file:"))
	for _, tc := range []struct {
		name, method, network string
		ok, keys              bool
		rsa                   bool
	}{
		{"TLS 1.2 fragmented both ways", "eap-tls", bigTLS, true, true, true},
		{"TLS 1.3 fragmented both ways", "eap-tls", bigTLS + "\nphase1=\"tls_disable_tlsv1_3=0\"", true, true, true},
		{"MSCHAPv2", "eap-mschapv2", "eap=MSCHAPV2\nidentity=\"alice\"\npassword=\"alice's password\"", true, true, false},
		{"MSCHAPv2 wrong password", "eap-mschapv2", "eap=MSCHAPV2\nidentity=\"alice\"\npassword=\"guess\"", false, false, false},
		{"MSCHAPv2 unknown user", "eap-mschapv2", "eap=MSCHAPV2\nidentity=\"bob\"\npassword=\"alice's password\"", false, false, false},
		{"MD5", "eap-md5", "eap=MD5\nidentity=\"alice\"\npassword=\"alice's password\"", true, false, false},
		{"TLS 1.2", "eap-tls", fmt.Sprintf("eap=TLS\nidentity=\"alice\"\nca_cert=%q\nclient_cert=%q\nprivate_key=%q", pki.ca, pki.clientCert, clientKey), true, true, false},
		{"TLS 1.3", "eap-tls", fmt.Sprintf("eap=TLS\nidentity=\"alice\"\nca_cert=%q\nclient_cert=%q\nprivate_key=%q\nphase1=\"tls_disable_tlsv1_3=0\"", pki.ca, pki.clientCert, clientKey), true, true, false},
		{"TLS client certificate from another CA", "eap-tls", fmt.Sprintf("eap=TLS\nidentity=\"alice\"\nca_cert=%q\nclient_cert=%q\nprivate_key=%q", pki.ca, other.clientCert, strings.TrimPrefix(other.clientKey, "file:")), false, false, false},
		// The server picks TLS first; a peer with only a password Naks to MSCHAPv2.
		{"eap with Nak", "eap", "eap=MSCHAPV2\nidentity=\"alice\"\npassword=\"alice's password\"", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secret := []byte("radius-front-end-secret")
			p := srv
			if tc.rsa {
				p = srvRSA
			}
			front := newRADIUSFront(t, p, tc.method, secret)
			conf := filepath.Join(t.TempDir(), "eapol.conf")
			if err := os.WriteFile(conf, []byte("network={\nkey_mgmt=IEEE8021X\n"+tc.network+"\n}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"-c", conf, "-a", "127.0.0.1", "-p", fmt.Sprint(front.port()), "-s", string(secret), "-t", "10", "-r", "0"}
			if !tc.keys {
				args = append(args, "-n")
			}
			out, err := exec.Command(bin, args...).CombinedOutput()
			last := lastLines(string(out), 15)
			if tc.ok {
				if err != nil || !strings.Contains(string(out), "\nSUCCESS") {
					t.Fatalf("eapol_test failed (%v):\n%s", err, last)
				}
				if tc.keys && !strings.Contains(string(out), "MPPE keys OK: 1  mismatch: 0") {
					t.Errorf("MSK not confirmed by the peer:\n%s", last)
				}
			} else if err == nil || !strings.Contains(string(out), "Access-Reject") && !strings.Contains(string(out), "EAP-Failure") {
				t.Fatalf("eapol_test did not fail (%v):\n%s", err, last)
			}
			if st := front.result(); st == nil || st.Success != tc.ok {
				t.Errorf("veil's server ended with %+v", st)
			}
			front.mu.Lock()
			defer front.mu.Unlock()
			if tc.rsa && (!front.fragIn || !front.fragOut) {
				t.Errorf("fragments from the peer: %v, to the peer: %v; want both", front.fragIn, front.fragOut)
			}
		})
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// radiusFront is a one-conversation RADIUS server around a veil EAP
// server session.
type radiusFront struct {
	conn   *net.UDPConn
	mu     sync.Mutex
	last   *auth.EAPStep
	secret []byte
	// fragIn and fragOut: an EAP-TLS fragment with more to follow came
	// from the peer, went to the peer.
	fragIn, fragOut bool
}

func (f *radiusFront) port() int { return f.conn.LocalAddr().(*net.UDPAddr).Port }

func (f *radiusFront) result() *auth.EAPStep {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func newRADIUSFront(t *testing.T, p *Plugin, method string, secret []byte) *radiusFront {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &radiusFront{conn: conn, secret: secret}
	sess, err := p.StartEAP(context.Background(), &auth.EAPRequest{Connection: "s", Method: method, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		conn.Close()
		<-done
		sess.Close()
	})
	go func() {
		defer close(done)
		f.serve(t, sess)
	}()
	return f
}

func (f *radiusFront) serve(t *testing.T, sess auth.EAPSession) {
	ctx := context.Background()
	buf := make([]byte, 4096)
	var identityID uint8
	started := false
	for {
		n, from, err := f.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		req, err := parseRADIUS(buf[:n])
		if err != nil || req.Code != radiusAccessRequest {
			t.Errorf("RADIUS front end: bad request: %v", err)
			return
		}
		in := req.eapMessage()
		if !started {
			// The NAS asked for the identity itself; veil's server asks
			// again, so the peer's answer is given the identifier of
			// veil's own Identity request.
			first, err := sess.Step(ctx, nil)
			if err != nil {
				t.Error(err)
				return
			}
			identityID, started = first.Message[1], true
			if len(in) > 1 {
				in[1] = identityID
			}
		}
		st, err := sess.Step(ctx, in)
		if err != nil {
			t.Errorf("veil's EAP server: %v", err)
			return
		}
		f.mu.Lock()
		f.fragIn = f.fragIn || isFragment(in)
		f.fragOut = f.fragOut || isFragment(st.Message)
		f.mu.Unlock()
		reply := &radiusPacket{Code: radiusAccessChallenge, ID: req.ID, Auth: req.Auth}
		if st.Done {
			f.mu.Lock()
			f.last = st
			f.mu.Unlock()
			reply.Code = radiusAccessReject
			if st.Success {
				reply.Code = radiusAccessAccept
				if len(st.MSK) > 0 {
					recv, send := st.MSK[:32], st.MSK[32:]
					if isZero(st.MSK[32:]) { // MSCHAPv2: 16-byte keys, as FreeRADIUS sends them
						recv, send = st.MSK[:16], st.MSK[16:32]
					}
					reply.add(attrVendorSpecific, msVSA(msMPPERecvKey, encryptMPPEKey(recv, &req.Auth, f.secret)))
					reply.add(attrVendorSpecific, msVSA(msMPPESendKey, encryptMPPEKey(send, &req.Auth, f.secret)))
				}
			}
		}
		for m := st.Message; len(m) > 0; {
			k := min(len(m), radiusMaxValue)
			reply.add(attrEAPMessage, m[:k])
			m = m[k:]
		}
		reply.add(attrState, []byte("veil"))
		reply.add(attrMessageAuth, make([]byte, 16))
		b, err := reply.marshal()
		if err != nil {
			t.Error(err)
			return
		}
		sum, _ := messageAuthenticator(b, &req.Auth, f.secret)
		copy(b[len(b)-16:], sum)
		h := md5.New()
		h.Write(b)
		h.Write(f.secret)
		copy(b[4:20], h.Sum(nil))
		if _, err := f.conn.WriteToUDP(b, from); err != nil {
			return
		}
	}
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func msVSA(typ uint8, v []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, vendorMicrosoft)
	return append(append(b, typ, byte(2+len(v))), v...)
}

// encryptMPPEKey is RFC 2548 §2.4.2, the inverse of decryptMPPEKey.
func encryptMPPEKey(key []byte, reqAuth *[16]byte, secret []byte) []byte {
	plain := append([]byte{byte(len(key))}, key...)
	for len(plain)%16 != 0 {
		plain = append(plain, 0)
	}
	salt := make([]byte, 2)
	rand.Read(salt)
	salt[0] |= 0x80
	out := append([]byte(nil), salt...)
	prev := append(append([]byte(nil), reqAuth[:]...), salt...)
	for i := 0; i < len(plain); i += 16 {
		h := md5.New()
		h.Write(secret)
		h.Write(prev)
		b := h.Sum(nil)
		for j := range 16 {
			b[j] ^= plain[i+j]
		}
		out = append(out, b...)
		prev = b
	}
	return out
}
