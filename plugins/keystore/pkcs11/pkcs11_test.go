package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	p11 "github.com/miekg/pkcs11"

	"github.com/veil-ipsec/veil/sdk/keystore"
	"github.com/veil-ipsec/veil/sdk/plugintest"
)

// The tests run against a real SoftHSM2 with tokens in a temporary
// directory, set up once: SoftHSM reads SOFTHSM2_CONF at C_Initialize,
// which happens once per process.
const (
	softhsmModule = "/usr/lib/softhsm/libsofthsm2.so"
	userPIN       = "246810"
	otherPIN      = "135791"
)

var (
	hsmDir    string // "" when SoftHSM2 is not installed
	hsmErr    error
	ppkValue  = []byte("0123456789abcdef0123456789abcdef")
	dataValue = []byte("a PPK kept as a data object")
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "veil-pkcs11-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hsmErr = setupHSM(dir)
	if hsmErr == nil {
		hsmDir = dir
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needHSM skips without SoftHSM2 installed, except in CI, which installs it.
func needHSM(t *testing.T) {
	t.Helper()
	if hsmDir != "" {
		return
	}
	if errors.Is(hsmErr, exec.ErrNotFound) || errors.Is(hsmErr, os.ErrNotExist) {
		if os.Getenv("CI") == "" {
			t.Skipf("SoftHSM2 is not installed (apt-get install softhsm2): %v", hsmErr)
		}
	}
	t.Fatalf("SoftHSM2 setup: %v", hsmErr)
}

func setupHSM(dir string) error {
	if _, err := os.Stat(softhsmModule); err != nil {
		return err
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		return err
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		return err
	}
	os.Setenv("SOFTHSM2_CONF", conf)
	for _, tk := range [][2]string{{"veil", userPIN}, {"other", otherPIN}} {
		out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", tk[0], "--pin", tk[1], "--so-pin", "99999999").CombinedOutput()
		if err != nil {
			return fmt.Errorf("softhsm2-util --init-token: %v: %s", err, out)
		}
	}
	for name, pin := range map[string]string{"pin": userPIN, "other.pin": otherPIN, "wrong.pin": "000000"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(pin+"\n"), 0o600); err != nil {
			return err
		}
	}
	return makeKeys()
}

// makeKeys creates the keys and secrets of token "veil" through the
// PKCS#11 API, as an operator's tool (pkcs11-tool, the HSM's own) would.
func makeKeys() error {
	c, err := loadModule(softhsmModule)
	if err != nil {
		return err
	}
	slot, err := slotOf(c, "veil")
	if err != nil {
		return err
	}
	s, err := c.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		return err
	}
	defer c.CloseSession(s)
	if err := c.Login(s, p11.CKU_USER, userPIN); err != nil {
		return err
	}
	defer c.Logout(s)
	pair := func(label string, id byte, mech uint, pubAttrs, privAttrs []*p11.Attribute) error {
		common := func(extra []*p11.Attribute, class uint) []*p11.Attribute {
			return append([]*p11.Attribute{
				p11.NewAttribute(p11.CKA_CLASS, class),
				p11.NewAttribute(p11.CKA_TOKEN, true),
				p11.NewAttribute(p11.CKA_LABEL, label),
				p11.NewAttribute(p11.CKA_ID, []byte{id}),
			}, extra...)
		}
		_, _, err := c.GenerateKeyPair(s, []*p11.Mechanism{p11.NewMechanism(mech, nil)},
			common(append(pubAttrs, p11.NewAttribute(p11.CKA_VERIFY, true)), p11.CKO_PUBLIC_KEY),
			common(append(privAttrs, p11.NewAttribute(p11.CKA_SIGN, true), p11.NewAttribute(p11.CKA_SENSITIVE, true),
				p11.NewAttribute(p11.CKA_EXTRACTABLE, false), p11.NewAttribute(p11.CKA_PRIVATE, true)), p11.CKO_PRIVATE_KEY))
		if err != nil {
			return fmt.Errorf("generating %s: %w", label, err)
		}
		return nil
	}
	p256, _ := asn1OID(oidP256)
	p384, _ := asn1OID(oidP384)
	ed, _ := asn1OID(oidEd25519)
	if err := pair("ec256", 1, p11.CKM_EC_KEY_PAIR_GEN, []*p11.Attribute{p11.NewAttribute(p11.CKA_EC_PARAMS, p256)}, nil); err != nil {
		return err
	}
	if err := pair("ec384", 2, p11.CKM_EC_KEY_PAIR_GEN, []*p11.Attribute{p11.NewAttribute(p11.CKA_EC_PARAMS, p384)}, nil); err != nil {
		return err
	}
	if err := pair("rsa2048", 3, p11.CKM_RSA_PKCS_KEY_PAIR_GEN, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_MODULUS_BITS, 2048), p11.NewAttribute(p11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1})}, nil); err != nil {
		return err
	}
	// CKM_EC_EDWARDS_KEY_PAIR_GEN (PKCS#11 3.0), which SoftHSM 2.6 has.
	if err := pair("ed25519", 4, 0x1055, []*p11.Attribute{p11.NewAttribute(p11.CKA_EC_PARAMS, ed)}, nil); err != nil {
		return err
	}
	objects := [][]*p11.Attribute{{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_GENERIC_SECRET),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_SENSITIVE, false),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, true),
		p11.NewAttribute(p11.CKA_LABEL, "ppk"),
		p11.NewAttribute(p11.CKA_ID, []byte{9}),
		p11.NewAttribute(p11.CKA_VALUE, ppkValue),
	}, {
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_GENERIC_SECRET),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
		p11.NewAttribute(p11.CKA_LABEL, "sealed"),
		p11.NewAttribute(p11.CKA_VALUE, ppkValue),
	}, {
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_DATA),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_LABEL, "ppkdata"),
		p11.NewAttribute(p11.CKA_VALUE, dataValue),
	}, {
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_DATA),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_LABEL, "huge"),
		p11.NewAttribute(p11.CKA_VALUE, make([]byte, keystore.MaxSecretLen+1)),
	}}
	objects = append(objects, importedKeys(p256)...)
	for _, tmpl := range objects {
		if _, err := c.CreateObject(s, tmpl); err != nil {
			return fmt.Errorf("creating an object: %w", err)
		}
	}
	return nil
}

// importedKeys are P-256 keys imported without a public key object:
// "certonly" (id 05) has a certificate with its id, "mismatch" (id 06) a
// public key object of another key.
func importedKeys(p256 []byte) [][]*p11.Attribute {
	priv := func(k *ecdsa.PrivateKey, label string, id byte) []*p11.Attribute {
		d, _ := k.Bytes()
		return []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
			p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_EC),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_PRIVATE, true),
			p11.NewAttribute(p11.CKA_SENSITIVE, true),
			p11.NewAttribute(p11.CKA_SIGN, true),
			p11.NewAttribute(p11.CKA_LABEL, label),
			p11.NewAttribute(p11.CKA_ID, []byte{id}),
			p11.NewAttribute(p11.CKA_EC_PARAMS, p256),
			p11.NewAttribute(p11.CKA_VALUE, d),
		}
	}
	certKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(5), Subject: pkix.Name{CommonName: "certonly"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &certKey.PublicKey, caKey)
	mismatch, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	point, _ := other.PublicKey.Bytes()
	ecPoint, _ := asn1.Marshal(point)
	return [][]*p11.Attribute{
		priv(certKey, "certonly", 5),
		{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_CERTIFICATE),
			p11.NewAttribute(p11.CKA_CERTIFICATE_TYPE, p11.CKC_X_509),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_LABEL, "certonly"),
			p11.NewAttribute(p11.CKA_ID, []byte{5}),
			p11.NewAttribute(p11.CKA_SUBJECT, []byte{0x30, 0}),
			p11.NewAttribute(p11.CKA_VALUE, der),
		},
		priv(mismatch, "mismatch", 6),
		{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY),
			p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_EC),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_LABEL, "mismatch"),
			p11.NewAttribute(p11.CKA_ID, []byte{6}),
			p11.NewAttribute(p11.CKA_EC_PARAMS, p256),
			p11.NewAttribute(p11.CKA_EC_POINT, ecPoint),
		},
	}
}

func slotOf(c *p11.Ctx, label string) (uint, error) {
	slots, err := c.GetSlotList(true)
	if err != nil {
		return 0, err
	}
	for _, s := range slots {
		if ti, err := c.GetTokenInfo(s); err == nil && ti.Label == label {
			return s, nil
		}
	}
	return 0, fmt.Errorf("no token %q", label)
}

func config(t *testing.T, attrs map[string]any) []byte {
	t.Helper()
	m := map[string]any{"module": softhsmModule, "pin_file": filepath.Join(hsmDir, "pin"), "token": "veil"}
	for k, v := range attrs {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func configured(t *testing.T, attrs map[string]any) *Store {
	t.Helper()
	s := New()
	if err := s.Configure(context.Background(), config(t, attrs)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return s
}

var signerRefs = []string{
	"pkcs11:token=veil;object=ec256;type=private",
	"pkcs11:id=%02;type=private",
	"pkcs11:token=veil;object=rsa2048",
	"pkcs11:object=ed25519;type=private",
}

func TestConformance(t *testing.T) {
	needHSM(t)
	plugintest.RunKeystoreConformance(t, New(), plugintest.KeystoreCase{
		Config:     config(t, nil),
		SecretRef:  "pkcs11:token=veil;object=ppk;type=secret-key",
		Secret:     ppkValue,
		SignerRefs: signerRefs,
		MissingRef: "pkcs11:token=veil;object=missing;type=private",
	})
}

// TestSignVerify signs with every key type and mechanism and checks the
// signatures with Go's crypto, as the peer would.
func TestSignVerify(t *testing.T) {
	needHSM(t)
	s := configured(t, nil)
	ctx := context.Background()
	msg := []byte("IKE_AUTH signed octets")
	d256 := sha256.Sum256(msg)
	d384 := sha512.Sum384(msg)
	pub := func(ref string) crypto.PublicKey {
		t.Helper()
		p, err := s.Public(ctx, ref)
		if err != nil {
			t.Fatalf("Public(%s): %v", ref, err)
		}
		return p
	}
	sign := func(ref string, d []byte, o keystore.SignOptions) []byte {
		t.Helper()
		sig, err := s.Sign(ctx, ref, d, o)
		if err != nil {
			t.Fatalf("Sign(%s, %+v): %v", ref, o, err)
		}
		return sig
	}

	ec256, ok := pub(signerRefs[0]).(*ecdsa.PublicKey)
	if !ok || ec256.Curve.Params().Name != "P-256" {
		t.Fatalf("ec256 public key is %T", pub(signerRefs[0]))
	}
	if !ecdsa.VerifyASN1(ec256, d256[:], sign(signerRefs[0], d256[:], keystore.SignOptions{Hash: crypto.SHA256})) {
		t.Error("P-256 signature does not verify")
	}
	ec384, ok := pub(signerRefs[1]).(*ecdsa.PublicKey)
	if !ok || ec384.Curve.Params().Name != "P-384" {
		t.Fatalf("ec384 public key is %T", pub(signerRefs[1]))
	}
	if !ecdsa.VerifyASN1(ec384, d384[:], sign(signerRefs[1], d384[:], keystore.SignOptions{Hash: crypto.SHA384})) {
		t.Error("P-384 signature does not verify")
	}

	rsaPub, ok := pub(signerRefs[2]).(*rsa.PublicKey)
	if !ok || rsaPub.N.BitLen() != 2048 {
		t.Fatalf("rsa2048 public key is %T", pub(signerRefs[2]))
	}
	for _, c := range []struct {
		h    crypto.Hash
		d    []byte
		salt int
	}{{crypto.SHA256, d256[:], rsa.PSSSaltLengthEqualsHash}, {crypto.SHA384, d384[:], 48}, {crypto.SHA256, d256[:], rsa.PSSSaltLengthAuto}} {
		sig := sign(signerRefs[2], c.d, keystore.SignOptions{Hash: c.h, PSS: true, SaltLength: c.salt})
		if err := rsa.VerifyPSS(rsaPub, c.h, c.d, sig, &rsa.PSSOptions{Hash: c.h, SaltLength: c.salt}); err != nil {
			t.Errorf("RSA-PSS %v salt %d: %v", c.h, c.salt, err)
		}
	}
	if err := rsa.VerifyPKCS1v15(rsaPub, crypto.SHA384, d384[:], sign(signerRefs[2], d384[:], keystore.SignOptions{Hash: crypto.SHA384})); err != nil {
		t.Errorf("RSA PKCS#1 v1.5: %v", err)
	}

	// A key imported without its public key object: the certificate with
	// the same CKA_ID has it.
	certOnly, ok := pub("pkcs11:object=certonly").(*ecdsa.PublicKey)
	if !ok || !ecdsa.VerifyASN1(certOnly, d256[:], sign("pkcs11:object=certonly", d256[:], keystore.SignOptions{Hash: crypto.SHA256})) {
		t.Error("key with a certificate and no public key object: no public key or the signature does not verify")
	}
	if _, err := s.Public(ctx, "pkcs11:id=%06"); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("public key object of another key: %v; want an error", err)
	}

	edPub, ok := pub(signerRefs[3]).(ed25519.PublicKey)
	if !ok {
		t.Fatalf("ed25519 public key is %T", pub(signerRefs[3]))
	}
	if !ed25519.Verify(edPub, msg, sign(signerRefs[3], msg, keystore.SignOptions{})) {
		t.Error("Ed25519 signature does not verify")
	}
	if _, err := s.Sign(ctx, signerRefs[3], d256[:], keystore.SignOptions{Hash: crypto.SHA256}); err == nil {
		t.Error("Ed25519 signed a prehashed digest")
	}
	if _, err := s.Sign(ctx, signerRefs[0], d384[:], keystore.SignOptions{Hash: crypto.SHA256}); err == nil {
		t.Error("signed a 48-byte digest as SHA-256")
	}
}

func TestSecrets(t *testing.T) {
	needHSM(t)
	s := configured(t, nil)
	ctx := context.Background()
	for ref, want := range map[string][]byte{
		"pkcs11:object=ppk":                ppkValue,
		"pkcs11:id=%09;type=secret-key":    ppkValue,
		"pkcs11:object=ppkdata;type=data":  dataValue,
		"pkcs11:token=veil;object=ppkdata": dataValue,
	} {
		got, err := s.Secret(ctx, ref)
		if err != nil || string(got) != string(want) {
			t.Errorf("Secret(%s) = %q, %v; want %q", ref, got, err, want)
		}
	}
	for ref, want := range map[string]string{
		"pkcs11:object=sealed":              "CKR_ATTRIBUTE_SENSITIVE",
		"pkcs11:object=huge;type=data":      "8193 bytes (1-8192 allowed)",
		"pkcs11:object=ec256;type=private":  "holds no secret",
		"pkcs11:object=nothing;type=data":   "key not found",
		"pkcs11:token=nosuch;object=ppk":    `no token labelled "nosuch"`,
		"pkcs11:object=ppk;x-vendor=1":      `unsupported attribute "x-vendor"`,
		"pkcs11:object=ppk?pin-value=31337": "PIN does not belong in the reference",
	} {
		_, err := s.Secret(ctx, ref)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Secret(%s) = %v; want an error with %q", ref, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "31337") {
			t.Errorf("error shows the PIN from the reference: %v", err)
		}
	}
}

func TestErrors(t *testing.T) {
	needHSM(t)
	ctx := context.Background()
	s := configured(t, nil)

	_, err := s.Public(ctx, "pkcs11:token=veil;object=missing;type=private")
	if !errors.Is(err, keystore.ErrNotFound) || !strings.Contains(err.Error(), `"pkcs11:token=veil;object=missing;type=private"`) {
		t.Errorf("missing key: %v; want ErrNotFound naming the reference", err)
	}
	for ref, want := range map[string]string{
		"file:/etc/x":                        "not a pkcs11: reference",
		"pkcs11:":                            "no attributes",
		"pkcs11:token=veil":                  "names no object",
		"pkcs11:object=a;object=b":           "appears twice",
		"pkcs11:object=a b":                  "must be percent-encoded",
		"pkcs11:object=%zz":                  "two hex digits",
		"pkcs11:object=ec256;type=cert":      "need type=private",
		"pkcs11:object=ec256;type=secret":    `type "secret" is not`,
		"pkcs11:object=ec256;slot-id=x":      "not a decimal number",
		"pkcs11:object=ec256;bogus":          "not attribute=value",
		"pkcs11:object=ec256?module-path=/x": "the plugin's module attribute",
		"pkcs11:object=ppk;type=private":     "key not found",
	} {
		_, err := s.Public(ctx, ref)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Public(%q) = %v; want an error with %q", ref, err, want)
		}
	}

	// Two tokens and no default: a reference must say which.
	noDefault := configured(t, map[string]any{"token": nil})
	if _, err := noDefault.Public(ctx, "pkcs11:object=ec256"); err == nil || !strings.Contains(err.Error(), "2 tokens match") {
		t.Errorf("ambiguous token: %v", err)
	}

	// A wrong PIN fails Configure when the default token is named...
	wrong := filepath.Join(hsmDir, "wrong.pin")
	err = New().Configure(ctx, config(t, map[string]any{"token": "other", "pin_file": wrong}))
	if err == nil || !strings.Contains(err.Error(), "CKR_PIN_INCORRECT") || strings.Contains(err.Error(), "000000") {
		t.Errorf("Configure with a wrong PIN: %v; want CKR_PIN_INCORRECT without the PIN", err)
	}
	// ...and otherwise the first use, after which it is not tried again.
	ws := configured(t, map[string]any{"token": nil, "pin_file": wrong})
	for range 2 {
		_, err := ws.Public(ctx, "pkcs11:token=other;object=k")
		if err == nil || !strings.Contains(err.Error(), "CKR_PIN_INCORRECT") || !strings.Contains(err.Error(), "not tried again") {
			t.Errorf("wrong PIN: %v", err)
		}
	}
	if err := ws.Health(ctx); err != nil {
		t.Errorf("Health with a refused PIN (a restart would try it again): %v", err)
	}
	// Without pin_file the plugin does not log in and private keys are
	// invisible: the error says what is missing.
	// (Token "other", where no session of this process is logged in:
	// login is per process and token.)
	noPIN := configured(t, map[string]any{"pin_file": nil})
	if _, err := noPIN.Public(ctx, "pkcs11:token=other;object=k"); !errors.Is(err, keystore.ErrNotFound) || !strings.Contains(err.Error(), "set pin_file") {
		t.Errorf("no pin_file: %v", err)
	}
	// The right PIN gets to the token; it has no key k.
	right := configured(t, map[string]any{"token": nil, "pin_file": filepath.Join(hsmDir, "other.pin")})
	if _, err := right.Public(ctx, "pkcs11:token=other;object=k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("right PIN: %v; want ErrNotFound", err)
	}

	for name, attrs := range map[string]map[string]any{
		"module required":  {"module": nil},
		"module relative":  {"module": "libsofthsm2.so"},
		"module missing":   {"module": "/nonexistent/libp11.so"},
		"module not a lib": {"module": filepath.Join(hsmDir, "pin")},
		"pin_file missing": {"pin_file": filepath.Join(hsmDir, "nope")},
		"no such token":    {"token": "nosuch"},
		"max_sessions":     {"max_sessions": 0},
	} {
		if err := New().Configure(ctx, config(t, attrs)); err == nil {
			t.Errorf("%s: Configure succeeded", name)
		}
	}
	loose := filepath.Join(hsmDir, "loose.pin")
	os.WriteFile(loose, []byte(userPIN), 0o644)
	if err := New().Configure(ctx, config(t, map[string]any{"pin_file": loose})); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable pin_file: %v", err)
	}
}

// TestConcurrent signs from many goroutines through a pool of two
// sessions, with every key type, and reconfigures meanwhile.
func TestConcurrent(t *testing.T) {
	needHSM(t)
	s := configured(t, map[string]any{"max_sessions": 2})
	ctx := context.Background()
	msg := []byte("concurrent")
	d := sha256.Sum256(msg)
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ref := signerRefs[i%len(signerRefs)]
			pub, err := s.Public(ctx, ref)
			if err != nil {
				t.Errorf("Public: %v", err)
				return
			}
			in, opts := d[:], keystore.SignOptions{Hash: crypto.SHA256}
			if _, ok := pub.(ed25519.PublicKey); ok {
				in, opts = msg, keystore.SignOptions{}
			}
			sig, err := s.Sign(ctx, ref, in, opts)
			if err != nil {
				t.Errorf("Sign(%s): %v", ref, err)
				return
			}
			var ok bool
			switch k := pub.(type) {
			case *ecdsa.PublicKey:
				ok = ecdsa.VerifyASN1(k, in, sig)
			case *rsa.PublicKey:
				ok = rsa.VerifyPKCS1v15(k, crypto.SHA256, in, sig) == nil
			case ed25519.PublicKey:
				ok = ed25519.Verify(k, in, sig)
			}
			if !ok {
				t.Errorf("signature of %s does not verify", ref)
			}
		}()
		if i == 32 {
			if err := s.Configure(ctx, config(t, map[string]any{"max_sessions": 3})); err != nil {
				t.Errorf("reconfigure: %v", err)
			}
		}
	}
	wg.Wait()
	if err := s.Health(ctx); err != nil {
		t.Errorf("Health: %v", err)
	}
}

func asn1OID(o asn1.ObjectIdentifier) ([]byte, error) { return asn1.Marshal(o) }

// TestSessionsLost: when every session is gone (the token was pulled and
// put back, the HSM connection reset: here C_CloseAllSessions, which also
// logs out), the next calls open fresh sessions and log in again.
func TestSessionsLost(t *testing.T) {
	needHSM(t)
	s := configured(t, nil)
	ctx := context.Background()
	d := sha256.Sum256([]byte("before and after"))
	opts := keystore.SignOptions{Hash: crypto.SHA256}
	if _, err := s.Sign(ctx, signerRefs[0], d[:], opts); err != nil {
		t.Fatal(err)
	}
	c, _ := loadModule(softhsmModule)
	slot, err := slotOf(c, "veil")
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range []func() error{
		func() error { return s.Health(ctx) },
		func() error { _, err := s.Sign(ctx, signerRefs[0], d[:], opts); return err },
		func() error { _, err := s.Secret(ctx, "pkcs11:object=ppk"); return err },
	} {
		if err := c.CloseAllSessions(slot); err != nil {
			t.Fatal(err)
		}
		if err := call(); err != nil {
			t.Errorf("after C_CloseAllSessions: %v", err)
		}
	}
}

// TestHealthWhileBusy: with every session busy the health check does not
// queue behind them (under load that would fail it and restart a working
// plugin). Its context is already cancelled: a check that waited for a
// session would return that error.
func TestHealthWhileBusy(t *testing.T) {
	needHSM(t)
	s := configured(t, map[string]any{"max_sessions": 1})
	ctx := context.Background()
	if _, err := s.Public(ctx, signerRefs[0]); err != nil {
		t.Fatal(err)
	}
	var tok *token
	for _, tk := range s.st.tokens {
		tok = tk
	}
	sess, err := tok.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Health(cancelled); err != nil {
		t.Errorf("Health with the only session busy: %v", err)
	}
	if _, err := s.Sign(cancelled, signerRefs[0], make([]byte, 32), keystore.SignOptions{Hash: crypto.SHA256}); err == nil {
		t.Error("Sign with the only session busy and a cancelled context succeeded")
	}
	tok.put(sess, nil)
	if err := s.Health(ctx); err != nil {
		t.Errorf("Health: %v", err)
	}
}

// BenchmarkSign is one signature on SoftHSM2 through the store (no RPC),
// from as many goroutines as the pool has sessions.
func BenchmarkSign(b *testing.B) {
	if hsmDir == "" {
		b.Skipf("SoftHSM2: %v", hsmErr)
	}
	s := New()
	cfg, _ := json.Marshal(map[string]any{"module": softhsmModule, "pin_file": filepath.Join(hsmDir, "pin"), "token": "veil"})
	if err := s.Configure(context.Background(), cfg); err != nil {
		b.Fatal(err)
	}
	d := sha256.Sum256([]byte("bench"))
	for _, c := range []struct {
		name, ref string
		opts      keystore.SignOptions
	}{
		{"P-256", signerRefs[0], keystore.SignOptions{Hash: crypto.SHA256}},
		{"RSA-2048-PSS", signerRefs[2], keystore.SignOptions{Hash: crypto.SHA256, PSS: true, SaltLength: rsa.PSSSaltLengthEqualsHash}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Sign(context.Background(), c.ref, d[:], c.opts); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
