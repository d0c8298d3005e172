package e2e

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/sdk/keystore"
	"github.com/veil-ipsec/veil/test/netns"
	vaulttest "github.com/veil-ipsec/veil/test/vault"
)

// vaultCertConfig is a certificate connection whose private key is the
// transit key keyRef in the Vault at addr, reached by the bundled vault
// keystore with the token in tokenFile.
func vaultCertConfig(sock, local, remote, lid, rid, cert, addr, tokenFile, keyRef, ca, start string) string {
	return daemonBlock(sock, local) + fmt.Sprintf(`
plugin "keystore" "vault" {
  config {
    address    = %q
    token_file = %q
  }
}
`, addr, tokenFile) + certConnection("lab", local, remote, lid, rid, cert, keyRef, ca, start)
}

// issueForKey writes NAME.pem: a certificate from ca for dnsName and the
// public key pub, whose private key the test never sees.
func (ca *testCA) issueForKey(t *testing.T, dir, name, dnsName string, pub crypto.PublicKey) string {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: dnsName}, DNSNames: []string{dnsName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".pem")
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return path
}

// Both daemons' certificate keys are transit keys in a real Vault server
// (the bundled vault keystore signs their AUTH payloads there): the SA
// comes up and carries traffic, for ECDSA, RSA (PSS) and Ed25519 keys; a
// PPK can come from Vault's KV engine.
// Vault listens on a unix socket, which the daemons in their network
// namespaces reach as a local Vault Agent would be reached.
func TestVaultKeystore(t *testing.T) {
	netns.Require(t)
	t.Cleanup(vaulttest.Cleanup)
	srv := vaulttest.StartOn(t, "unix:"+filepath.Join(t.TempDir(), "vault.sock"))
	srv.Mount(t, "transit", "transit", nil)
	tokenDir := t.TempDir()
	tokenFile := filepath.Join(tokenDir, "vault-token")
	if err := os.WriteFile(tokenFile, []byte(srv.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ a, b string }{{"ecdsa-p256", "rsa-2048"}, {"ed25519", "ecdsa-p384"}} {
		t.Run(c.a+" and "+c.b, func(t *testing.T) {
			p := newDirectPair(t)
			dir := t.TempDir()
			ca := newTestCA(t, dir)
			cert := func(name, typ string) (string, string) {
				key := strings.ReplaceAll(name+"-"+typ, "-", "_")
				srv.Write(t, "transit/keys/"+key, map[string]any{"type": typ})
				pub := vaultPublic(t, srv, key)
				return ca.issueForKey(t, dir, name, name+".test", pub), "vault:transit/" + key
			}
			ac, aRef := cert("a", c.a)
			bc, bRef := cert("b", c.b)
			p.db = startDaemonConfig(t, p.b, p.cb.Socket,
				vaultCertConfig(p.cb.Socket, p.bAddr, p.aAddr, "b.test", "a.test", bc, srv.Addr, tokenFile, bRef, ca.path, "none"))
			p.da = startDaemonConfig(t, p.a, p.ca.Socket,
				vaultCertConfig(p.ca.Socket, p.aAddr, p.bAddr, "a.test", "b.test", ac, srv.Addr, tokenFile, aRef, ca.path, "start"))
			p.da.waitEstablished()
			p.db.waitEstablished()
			pingThrough(t, p)
			for _, d := range []*daemon{p.da, p.db} {
				if row := pluginRow(t, d, "keystore", "vault"); len(row) < 3 || row[2] != "running" {
					t.Errorf("veilctl plugins: keystore vault is %q, want running", row)
				}
				if strings.Contains(d.log.String(), srv.Token) {
					t.Errorf("veild in %s logged the Vault token", d.ns.Name)
				}
			}
		})
	}

	// The post-quantum preshared key (RFC 8784) of both daemons is a field
	// of a KV version 2 secret in Vault.
	t.Run("ppk from kv", func(t *testing.T) {
		srv.Mount(t, "secret", "kv", map[string]string{"version": "2"})
		srv.Write(t, "secret/data/veil/ppk", map[string]any{"data": map[string]any{"value": "a post-quantum preshared key of 32+ bytes"}})
		p := newDirectPair(t)
		for _, c := range []*peerConfig{&p.ca, &p.cb} {
			c.Extra = `ppk_id = "pq-vault"
  ppk = "vault:secret/veil/ppk#value"
  ppk_required = true`
			c.ExtraConns = fmt.Sprintf(`plugin "keystore" "vault" {
  config {
    address    = %q
    token_file = %q
  }
}`, srv.Addr, tokenFile)
		}
		p.start(t)
		p.da.waitEstablished()
		p.db.waitEstablished()
		if !ppkInUse(t, p.da) || !ppkInUse(t, p.db) {
			t.Fatal("veilctl sas does not report the PPK in use")
		}
		ping(t, p.a, p.bAddr)
	})

	t.Run("missing key", func(t *testing.T) {
		p := newDirectPair(t)
		dir := t.TempDir()
		ca := newTestCA(t, dir)
		ac, ak := ca.issue(t, dir, "a", "a.test", "ecdsa-p256")
		bc, _ := ca.issue(t, dir, "b", "b.test", "ecdsa-p256")
		// b's certificate key is a transit key that does not exist: b
		// cannot sign, says why, and keeps serving.
		p.db = startDaemonConfig(t, p.b, p.cb.Socket,
			vaultCertConfig(p.cb.Socket, p.bAddr, p.aAddr, "b.test", "a.test", bc, srv.Addr, tokenFile, "vault:transit/nosuchkey", ca.path, "none"))
		p.da = startDaemonConfig(t, p.a, p.ca.Socket,
			certConfig(p.ca.Socket, p.aAddr, p.bAddr, "a.test", "b.test", ac, ak, ca.path, "start"))
		waitStatus(t, p.db, "b's keystore failure", "vault:transit/nosuchkey", keystore.ErrNotFound.Error())
		if len(p.da.sas().IKESAs) != 0 || len(p.db.sas().IKESAs) != 0 {
			t.Error("an IKE SA exists although b could not sign")
		}
		if row := pluginRow(t, p.db, "keystore", "vault"); len(row) < 3 || row[2] != "running" {
			t.Errorf("veilctl plugins: keystore vault is %q, want running", row)
		}
	})
}

// vaultPublic reads a transit key's public key with the root token, as an
// operator would to have a certificate issued for it.
func vaultPublic(t *testing.T, srv *vaulttest.Server, name string) crypto.PublicKey {
	t.Helper()
	sec, err := srv.API.Logical().Read("transit/keys/" + name)
	if err != nil || sec == nil {
		t.Fatalf("reading transit/keys/%s: %v", name, err)
	}
	k := sec.Data["keys"].(map[string]any)["1"].(map[string]any)["public_key"].(string)
	if blk, _ := pem.Decode([]byte(k)); blk != nil {
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}
	b, err := base64.StdEncoding.DecodeString(k) // Ed25519: the raw key
	if err != nil || len(b) != ed25519.PublicKeySize {
		t.Fatalf("transit/keys/%s: public key %q", name, k)
	}
	return ed25519.PublicKey(b)
}
