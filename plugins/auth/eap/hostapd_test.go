package eap

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// veil's EAP client against hostapd's EAP server (hostapd as a RADIUS
// server, driver=none), reached through veil's RADIUS pass-through: a
// second independent server implementation besides FreeRADIUS. The MSK
// the client derives must equal the one hostapd hands out in MS-MPPE keys.
func TestClientAgainstHostapd(t *testing.T) {
	bin, err := exec.LookPath("hostapd")
	if err != nil {
		t.Skip("hostapd not installed (Debian package hostapd)")
	}
	pki := newPKI(t, false)
	for _, tls13 := range []bool{false, true} {
		t.Run(fmt.Sprintf("TLS 1.3 enabled %v", tls13), func(t *testing.T) {
			addr, log := startHostapd(t, bin, pki, tls13)
			gw := configure(t, Config{RADIUSServer: addr, RADIUSSecret: writeSecret(t, "radius", "hostapd-secret"), AllowMD5: true})
			for _, tc := range []struct {
				name string
				conn ConnConfig
				ok   bool
			}{
				// hostapd proposes TLS first: the password clients Nak.
				{"MSCHAPv2", ConnConfig{Method: "eap-mschapv2", EAPID: "alice", Secret: writeSecret(t, "pw", "alice's password")}, true},
				{"MSCHAPv2 wrong password", ConnConfig{Method: "eap-mschapv2", EAPID: "alice", Secret: writeSecret(t, "bad", "guess")}, false},
				{"MD5", ConnConfig{Method: "eap-md5", EAPID: "alice", Secret: writeSecret(t, "pw", "alice's password")}, true},
				{"TLS", ConnConfig{Method: "eap-tls", EAPID: "alice", Certificate: pki.clientCert, Key: pki.clientKey, CACerts: []string{pki.ca}}, true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					cli := configure(t, Config{AllowMD5: true, Connections: map[string]ConnConfig{"c": tc.conn}})
					o := converse(t, start(t, gw, "s", tc.conn.Method, true), start(t, cli, "c", tc.conn.Method, false))
					switch {
					case !tc.ok:
						wantFailure(t, o, "")
					case tc.conn.Method == "eap-md5":
						wantSuccess(t, o, "alice", 0)
					default:
						wantSuccess(t, o, "alice", 64)
					}
					if tc.conn.Method == "eap-tls" && tls13 && !strings.Contains(log(), "TLSv1.3") {
						t.Error("hostapd did not log TLS 1.3")
					}
				})
			}
		})
	}
}

// startHostapd runs hostapd as a RADIUS server on a free loopback port
// and returns its address and a function that returns its log so far.
func startHostapd(t *testing.T, bin string, p *pki, tls13 bool) (string, func() string) {
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// A free port: hostapd cannot be told to pick one itself.
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	flags := "[DISABLE-TLSv1.3]"
	if tls13 {
		flags = "[ENABLE-TLSv1.3]"
	}
	conf := write("hostapd.conf", fmt.Sprintf(`driver=none
logger_stdout=-1
logger_stdout_level=0
eap_server=1
eap_user_file=%s
ca_cert=%s
server_cert=%s
private_key=%s
tls_flags=%s
radius_server_clients=%s
radius_server_auth_port=%d
`, write("users", `"alice" TLS,MSCHAPV2,MD5 "alice's password"`+"\n"), p.ca, p.serverCert,
		strings.TrimPrefix(p.serverKey, "file:"), flags, write("clients", "127.0.0.1/32 hostapd-secret\n"), port))
	cmd := exec.Command(bin, "-d", conf) // -d: the TLS version is logged at debug level
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Ready once the interface (and with it the RADIUS server) is up.
	ready := make(chan error, 1)
	var mu sync.Mutex
	var lines []string
	log := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(lines, "\n")
	}
	go func() {
		sc := bufio.NewScanner(out)
		up := false
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
			if !up && strings.Contains(sc.Text(), "AP-ENABLED") {
				up = true
				ready <- nil
			}
		}
		if !up {
			ready <- fmt.Errorf("hostapd exited:\n%s", log())
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("hostapd did not start")
	}
	return fmt.Sprintf("127.0.0.1:%d", port), log
}
