// Package pkcs11 is the bundled keystore for "pkcs11:" references (RFC
// 7512): signing keys and secrets on HSMs and tokens, reached through the
// vendor's PKCS#11 module. Private keys never leave the token: veild sends
// digests, the token signs. See README.md.
package pkcs11

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/veil-ipsec/veil/plugins/keystore/file"
	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/keystore"
)

// DefaultMaxSessions is how many sessions per token the plugin opens at
// most: signatures run in parallel up to this many.
const DefaultMaxSessions = 4

// Store is the PKCS#11 keystore.
type Store struct {
	mu sync.Mutex
	st *state // nil until configured
}

// state is one configuration's module, tokens and resolved keys.
type state struct {
	ctx         *p11.Ctx
	module      string
	pinFile     string
	token       string // default token label
	maxSessions int
	tokens      map[uint]*token // by slot
	keys        map[string]*key // by reference
}

// key is a resolved private key: its handle is valid in every session of
// the process until the object is deleted.
type key struct {
	tok    *token
	handle p11.ObjectHandle
	pub    crypto.PublicKey
}

// New returns the PKCS#11 keystore (bundled as keystore/pkcs11).
func New() *Store { return &Store{} }

var _ keystore.Store = (*Store)(nil)

func (s *Store) Info() base.Info {
	return base.Info{Name: "pkcs11", Kind: base.KindKeystore, Version: "1.0.0"}
}

func (s *Store) ConfigSchema() base.Schema {
	return base.Schema{Attributes: []base.Attribute{
		{Name: "module", Type: "string", Required: true,
			Description: `absolute path of the PKCS#11 library ("/usr/lib/softhsm/libsofthsm2.so")`},
		{Name: "pin_file", Type: "string",
			Description: "absolute path of a file (mode 0600) holding the user PIN; without it the plugin does not log in"},
		{Name: "token", Type: "string",
			Description: "label of the token for references without token=, serial= or another token attribute"},
		{Name: "max_sessions", Type: "number",
			Description: fmt.Sprintf("sessions per token, so signatures in parallel (%d)", DefaultMaxSessions)},
	}}
}

// Configure loads the module and, when a default token is named, logs in
// to it, so a wrong module, token or PIN shows when veild starts.
func (s *Store) Configure(ctx context.Context, configJSON []byte) error {
	var c struct {
		Module      *string `json:"module"`
		PinFile     *string `json:"pin_file"`
		Token       *string `json:"token"`
		MaxSessions *int    `json:"max_sessions"`
	}
	if err := json.Unmarshal(configJSON, &c); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	st := &state{maxSessions: DefaultMaxSessions, tokens: map[uint]*token{}, keys: map[string]*key{}}
	if c.Module == nil || *c.Module == "" {
		return errors.New("config: module (the path of the PKCS#11 library) is required")
	}
	st.module = *c.Module
	if c.PinFile != nil {
		if !filepath.IsAbs(*c.PinFile) {
			return fmt.Errorf("config: pin_file %q must be an absolute path", *c.PinFile)
		}
		pin, err := file.ReadSecret(file.Prefix + *c.PinFile)
		if err != nil {
			return fmt.Errorf("config: pin_file: %w", err)
		}
		clear(pin)
		st.pinFile = *c.PinFile
	}
	if c.Token != nil {
		st.token = *c.Token
	}
	if c.MaxSessions != nil {
		if *c.MaxSessions < 1 || *c.MaxSessions > 256 {
			return fmt.Errorf("config: max_sessions %d is not 1-256", *c.MaxSessions)
		}
		st.maxSessions = *c.MaxSessions
	}
	var err error
	if st.ctx, err = loadModule(st.module); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if st.token != "" {
		t, err := st.findToken(&URI{Token: st.token})
		if err == nil {
			err = t.do(ctx, func(p11.SessionHandle) error { return nil })
		}
		if err != nil {
			st.close()
			return fmt.Errorf("config: %w", err)
		}
	}
	s.mu.Lock()
	old := s.st
	s.st = st
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
	return nil
}

func (st *state) close() {
	for _, t := range st.tokens {
		t.close()
	}
}

func (s *Store) state() (*state, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st == nil {
		return nil, errors.New("the pkcs11 keystore is not configured")
	}
	return s.st, nil
}

// Health checks every token in use: a session still answers.
func (s *Store) Health(ctx context.Context) error {
	st, err := s.state()
	if err != nil {
		return err
	}
	s.mu.Lock()
	tokens := make([]*token, 0, len(st.tokens))
	for _, t := range st.tokens {
		tokens = append(tokens, t)
	}
	s.mu.Unlock()
	if len(tokens) == 0 {
		if _, err := st.ctx.GetInfo(); err != nil {
			return fmt.Errorf("module %s: C_GetInfo: %s", st.module, rv(err))
		}
	}
	for _, t := range tokens {
		if err := t.health(ctx); err != nil {
			return err
		}
	}
	return nil
}

// findToken returns the pool of the one initialized token the URI's token
// attributes (or the configured default label) match.
func (st *state) findToken(u *URI) (*token, error) {
	label := u.Token
	if label == "" && u.Manufacturer == "" && u.Serial == "" && u.Model == "" && !u.HasSlotID &&
		u.SlotDescription == "" && u.SlotManufacturer == "" {
		label = st.token
	}
	if u.LibraryManufacturer != "" || u.LibraryDescription != "" || u.LibraryVersion != "" {
		info, err := st.ctx.GetInfo()
		if err != nil {
			return nil, fmt.Errorf("C_GetInfo: %s", rv(err))
		}
		v := fmt.Sprintf("%d.%d", info.LibraryVersion.Major, info.LibraryVersion.Minor)
		if !match(u.LibraryManufacturer, info.ManufacturerID) || !match(u.LibraryDescription, info.LibraryDescription) ||
			(u.LibraryVersion != "" && u.LibraryVersion != v && u.LibraryVersion+".0" != v) {
			return nil, fmt.Errorf("the library attributes do not match module %s", st.module)
		}
	}
	slots, err := st.ctx.GetSlotList(true)
	if err != nil {
		return nil, fmt.Errorf("C_GetSlotList: %s", rv(err))
	}
	var found []uint
	var labels []string
	for _, slot := range slots {
		ti, err := st.ctx.GetTokenInfo(slot)
		if err != nil || ti.Flags&p11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		if !match(label, ti.Label) || !match(u.Manufacturer, ti.ManufacturerID) ||
			!match(u.Serial, ti.SerialNumber) || !match(u.Model, ti.Model) || (u.HasSlotID && u.SlotID != slot) {
			continue
		}
		if u.SlotDescription != "" || u.SlotManufacturer != "" {
			si, err := st.ctx.GetSlotInfo(slot)
			if err != nil || !match(u.SlotDescription, si.SlotDescription) || !match(u.SlotManufacturer, si.ManufacturerID) {
				continue
			}
		}
		found = append(found, slot)
		labels = append(labels, fmt.Sprintf("%q", ti.Label))
	}
	switch {
	case len(found) == 0 && label != "":
		return nil, fmt.Errorf("no token labelled %q is present in %s", label, st.module)
	case len(found) == 0:
		return nil, fmt.Errorf("no token present in %s matches", st.module)
	case len(found) > 1:
		return nil, fmt.Errorf("%d tokens match (%s): add token= or serial= to the reference, or set token in the plugin config",
			len(found), strings.Join(labels, ", "))
	}
	slot := found[0]
	if t, ok := st.tokens[slot]; ok {
		return t, nil
	}
	ti, _ := st.ctx.GetTokenInfo(slot)
	t := newToken(st.ctx, slot, ti.Label, st.pinFile, st.maxSessions)
	st.tokens[slot] = t
	return t, nil
}

// match compares a URI attribute with a token's blank-trimmed field.
func match(want, have string) bool {
	return want == "" || want == strings.TrimRight(have, " \x00")
}

// resolve parses ref and finds its token; callers hold no lock.
func (s *Store) resolve(ref string) (*state, *URI, *token, error) {
	st, err := s.state()
	if err != nil {
		return nil, nil, nil, err
	}
	u, err := ParseURI(ref)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reference %q: %w", redact(ref), err)
	}
	s.mu.Lock()
	t, err := st.findToken(u)
	s.mu.Unlock()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reference %q: %w", redact(ref), err)
	}
	return st, u, t, nil
}

// objectTemplate matches the URI's label and id on objects of class.
func objectTemplate(class uint, u *URI) []*p11.Attribute {
	tmpl := []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, class)}
	if u.Object != "" {
		tmpl = append(tmpl, p11.NewAttribute(p11.CKA_LABEL, u.Object))
	}
	if u.HasID {
		tmpl = append(tmpl, p11.NewAttribute(p11.CKA_ID, u.ID))
	}
	return tmpl
}

// findOne returns the one object tmpl matches: none is ErrNotFound, two
// are ambiguous.
func findOne(c *p11.Ctx, sess p11.SessionHandle, tmpl []*p11.Attribute, what string) (p11.ObjectHandle, error) {
	if err := c.FindObjectsInit(sess, tmpl); err != nil {
		return 0, callErr("C_FindObjectsInit", err)
	}
	objs, _, err := c.FindObjects(sess, 2)
	if ferr := c.FindObjectsFinal(sess); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return 0, callErr("C_FindObjects", err)
	}
	switch len(objs) {
	case 0:
		return 0, fmt.Errorf("no %s: %w", what, keystore.ErrNotFound)
	case 1:
		return objs[0], nil
	}
	return 0, fmt.Errorf("more than one %s matches: add id= or a more specific object=", what)
}

// attr reads one attribute; a missing one is nil without error.
func attr(c *p11.Ctx, sess p11.SessionHandle, o p11.ObjectHandle, typ uint) ([]byte, error) {
	a, err := c.GetAttributeValue(sess, o, []*p11.Attribute{p11.NewAttribute(typ, nil)})
	if err != nil {
		if is(err, p11.CKR_ATTRIBUTE_TYPE_INVALID) {
			return nil, nil
		}
		return nil, err
	}
	if len(a) != 1 {
		return nil, nil
	}
	return a[0].Value, nil
}

// key resolves a private key reference, cached until the next Configure.
func (s *Store) key(ctx context.Context, ref string) (*key, error) {
	st, err := s.state()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	k, ok := st.keys[ref]
	s.mu.Unlock()
	if ok {
		return k, nil
	}
	st, u, t, err := s.resolve(ref)
	if err != nil {
		return nil, err
	}
	if u.Type != "" && u.Type != "private" {
		return nil, fmt.Errorf("reference %q: signing keys need type=private, not type=%s", redact(ref), u.Type)
	}
	err = t.do(ctx, func(sess p11.SessionHandle) (err error) {
		k, err = loadKey(t, sess, u)
		return err
	})
	if err == nil {
		err = k.check(ctx)
	}
	if errors.Is(err, keystore.ErrNotFound) && t.pinFile == "" {
		// Private objects are invisible before login.
		err = fmt.Errorf("%w (the plugin does not log in: set pin_file)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("reference %q: %w", redact(ref), err)
	}
	s.mu.Lock()
	st.keys[ref] = k
	s.mu.Unlock()
	return k, nil
}

func (s *Store) forget(ref string) {
	s.mu.Lock()
	if s.st != nil {
		delete(s.st.keys, ref)
	}
	s.mu.Unlock()
}

func (s *Store) Public(ctx context.Context, ref string) (crypto.PublicKey, error) {
	k, err := s.key(ctx, ref)
	if err != nil {
		return nil, err
	}
	return k.pub, nil
}

func (s *Store) Sign(ctx context.Context, ref string, digest []byte, opts keystore.SignOptions) ([]byte, error) {
	for try := 0; ; try++ {
		k, err := s.key(ctx, ref)
		if err != nil {
			return nil, err
		}
		sig, err := k.sign(ctx, digest, opts)
		if err != nil && try == 0 && (is(err, p11.CKR_KEY_HANDLE_INVALID) || is(err, p11.CKR_OBJECT_HANDLE_INVALID)) {
			// The object was replaced (or the token re-inserted): look it up again.
			s.forget(ref)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reference %q: %w", redact(ref), err)
		}
		return sig, nil
	}
}

// Secret reads the value of a secret key (CKO_SECRET_KEY, extractable and
// not sensitive) or a data object (CKO_DATA), for PPK.
func (s *Store) Secret(ctx context.Context, ref string) ([]byte, error) {
	_, u, t, err := s.resolve(ref)
	if err != nil {
		return nil, err
	}
	var classes []uint
	switch u.Type {
	case "":
		classes = []uint{p11.CKO_SECRET_KEY, p11.CKO_DATA}
	case "secret-key":
		classes = []uint{p11.CKO_SECRET_KEY}
	case "data":
		classes = []uint{p11.CKO_DATA}
	default:
		return nil, fmt.Errorf("reference %q: type=%s holds no secret (use type=secret-key or type=data)", redact(ref), u.Type)
	}
	var v []byte
	err = t.do(ctx, func(sess p11.SessionHandle) (err error) {
		v, err = readSecret(t.ctx, sess, u, classes)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reference %q: %w", redact(ref), err)
	}
	return v, nil
}

func readSecret(c *p11.Ctx, sess p11.SessionHandle, u *URI, classes []uint) ([]byte, error) {
	var o p11.ObjectHandle
	var err error
	for _, class := range classes {
		tmpl := objectTemplate(class, u)
		if class == p11.CKO_DATA && u.HasID {
			// Data objects have no CKA_ID.
			return nil, fmt.Errorf("no secret key: %w", keystore.ErrNotFound)
		}
		if o, err = findOne(c, sess, tmpl, "secret key or data object"); !errors.Is(err, keystore.ErrNotFound) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	v, err := attr(c, sess, o, p11.CKA_VALUE)
	if err != nil {
		if is(err, p11.CKR_ATTRIBUTE_SENSITIVE) {
			return nil, errors.New("the secret is sensitive or not extractable (CKR_ATTRIBUTE_SENSITIVE): " +
				"a PPK must be created with CKA_SENSITIVE false and CKA_EXTRACTABLE true")
		}
		return nil, callErr("C_GetAttributeValue(CKA_VALUE)", err)
	}
	if len(v) == 0 || len(v) > keystore.MaxSecretLen {
		clear(v)
		return nil, fmt.Errorf("the secret is %d bytes (1-%d allowed)", len(v), keystore.MaxSecretLen)
	}
	return v, nil
}
