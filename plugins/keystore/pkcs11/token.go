package pkcs11

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/veil-ipsec/veil/plugins/keystore/file"
)

// modules are loaded and initialized once per process: C_Initialize may be
// called once, and C_Finalize would pull the module from under any other
// user. They stay loaded until the process exits.
var modules struct {
	sync.Mutex
	m map[string]*p11.Ctx
}

func loadModule(path string) (*p11.Ctx, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("module %q must be an absolute path", path)
	}
	modules.Lock()
	defer modules.Unlock()
	if c, ok := modules.m[path]; ok {
		return c, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("module: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("module %s is not a regular file", path)
	}
	c := p11.New(path)
	if c == nil {
		return nil, fmt.Errorf("module %s could not be loaded (not a PKCS#11 library, or a dependency is missing)", path)
	}
	if err := c.Initialize(); err != nil && !is(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		c.Destroy()
		return nil, fmt.Errorf("module %s: C_Initialize: %s", path, rv(err))
	}
	if modules.m == nil {
		modules.m = map[string]*p11.Ctx{}
	}
	modules.m[path] = c
	return c, nil
}

// rv names a PKCS#11 return value ("CKR_PIN_INCORRECT"); other errors as
// they are.
func rv(err error) string {
	var e p11.Error
	if errors.As(err, &e) {
		s := e.Error() // "pkcs11: 0xA0: CKR_PIN_INCORRECT"
		for i := len(s) - 1; i >= 0; i-- {
			if s[i] == ' ' {
				if name := s[i+1:]; name != "" {
					return name
				}
				break
			}
		}
		return fmt.Sprintf("CKR 0x%X", uint(e))
	}
	return err.Error()
}

func is(err error, code uint) bool {
	var e p11.Error
	return errors.As(err, &e) && uint(e) == code
}

// pinError is a login failure that trying again with the same PIN cannot
// fix and that counts towards locking the token.
func pinError(err error) bool {
	return is(err, p11.CKR_PIN_INCORRECT) || is(err, p11.CKR_PIN_LOCKED) ||
		is(err, p11.CKR_PIN_EXPIRED) || is(err, p11.CKR_PIN_INVALID) || is(err, p11.CKR_PIN_LEN_RANGE)
}

// sessionLost are errors after which a session is not reused.
func sessionLost(err error) bool {
	for _, c := range []uint{p11.CKR_SESSION_HANDLE_INVALID, p11.CKR_SESSION_CLOSED, p11.CKR_DEVICE_REMOVED,
		p11.CKR_TOKEN_NOT_PRESENT, p11.CKR_USER_NOT_LOGGED_IN, p11.CKR_DEVICE_ERROR, p11.CKR_GENERAL_ERROR,
		p11.CKR_OPERATION_ACTIVE} {
		if is(err, c) {
			return true
		}
	}
	return false
}

// token is one token's session pool. PKCS#11 sessions must not be used by
// two goroutines at once, so each call takes a session from the pool and
// gives it back. Login is per application and token: the first session
// logs in and later ones share that state.
type token struct {
	ctx     *p11.Ctx
	slot    uint
	label   string
	pinFile string // "" when the token needs no login

	idle chan p11.SessionHandle // sessions not in use
	open chan struct{}          // one element per open session

	mu       sync.Mutex
	loginErr error // a PIN error: not retried until the next Configure
	closed   bool
}

func newToken(ctx *p11.Ctx, slot uint, label, pinFile string, max int) *token {
	return &token{ctx: ctx, slot: slot, label: label, pinFile: pinFile,
		idle: make(chan p11.SessionHandle, max), open: make(chan struct{}, max)}
}

// get returns a logged-in session, waiting for one while all are in use.
func (t *token) get(ctx context.Context) (p11.SessionHandle, error) {
	select {
	case s := <-t.idle:
		return s, nil
	default:
	}
	select {
	case s := <-t.idle:
		return s, nil
	case t.open <- struct{}{}:
		s, err := t.openSession()
		if err != nil {
			<-t.open
			return 0, err
		}
		return s, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("waiting for a session on token %q: %w", t.label, ctx.Err())
	}
}

// put returns a session after a call that ended with err.
func (t *token) put(s p11.SessionHandle, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || (err != nil && sessionLost(err)) {
		t.ctx.CloseSession(s)
		<-t.open
		if !t.closed {
			// Whatever lost this session (the token pulled, the HSM
			// reconnected, a logout) most likely lost the idle ones too.
			t.drain()
		}
		return
	}
	t.idle <- s // never blocks: it has room for every open session
}

// do runs fn with a session, once more with a fresh session if the first
// one turned out to be lost.
func (t *token) do(ctx context.Context, fn func(p11.SessionHandle) error) error {
	for try := 0; ; try++ {
		s, err := t.get(ctx)
		if err != nil {
			return err
		}
		err = fn(s)
		t.put(s, err)
		if err == nil || try > 0 || !sessionLost(err) {
			return err
		}
	}
}

func (t *token) openSession() (p11.SessionHandle, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.loginErr != nil {
		return 0, t.loginErr
	}
	s, err := t.ctx.OpenSession(t.slot, p11.CKF_SERIAL_SESSION)
	if err != nil {
		return 0, fmt.Errorf("token %q: C_OpenSession: %s", t.label, rv(err))
	}
	info, err := t.ctx.GetSessionInfo(s)
	if err != nil {
		t.ctx.CloseSession(s)
		return 0, fmt.Errorf("token %q: C_GetSessionInfo: %s", t.label, rv(err))
	}
	if info.State == p11.CKS_RO_USER_FUNCTIONS || info.State == p11.CKS_RW_USER_FUNCTIONS {
		return s, nil // another session of ours is logged in
	}
	if t.pinFile == "" {
		return s, nil
	}
	if err := t.login(s); err != nil {
		t.ctx.CloseSession(s)
		return 0, err
	}
	return s, nil
}

func (t *token) login(s p11.SessionHandle) error {
	pin, err := file.ReadSecret(file.Prefix + t.pinFile)
	if err != nil {
		return fmt.Errorf("token %q: pin_file: %w", t.label, err)
	}
	// miekg/pkcs11 takes the PIN as a string, a copy that cannot be
	// zeroed; the file's bytes are.
	err = t.ctx.Login(s, p11.CKU_USER, string(pin))
	clear(pin)
	if err == nil || is(err, p11.CKR_USER_ALREADY_LOGGED_IN) {
		return nil
	}
	sticky := pinError(err)
	err = fmt.Errorf("token %q: C_Login: %s", t.label, rv(err))
	if sticky {
		// Each wrong try counts towards locking the token: stop here
		// until the operator fixes pin_file and reloads.
		err = fmt.Errorf("%w (the PIN in %s was refused; not tried again until the next reload)", err, t.pinFile)
		t.loginErr = err
	}
	return err
}

// health checks that a session is still good.
func (t *token) health(ctx context.Context) error {
	t.mu.Lock()
	loginErr := t.loginErr
	t.mu.Unlock()
	if loginErr != nil {
		// A restart would try the wrong PIN again: report it on use only.
		return nil
	}
	for try := 0; ; try++ {
		s, ok, err := t.tryGet()
		if !ok {
			// Every session is busy signing: a sign of life. Queueing
			// behind them would fail the check under load and get a
			// working plugin restarted.
			return nil
		}
		if err != nil {
			return err
		}
		_, err = t.ctx.GetSessionInfo(s)
		t.put(s, err)
		if err == nil {
			return nil
		}
		if try > 0 || !sessionLost(err) {
			return callErr(fmt.Sprintf("token %q: C_GetSessionInfo", t.label), err)
		}
	}
}

// tryGet is get without waiting: ok is false while every session is busy.
func (t *token) tryGet() (s p11.SessionHandle, ok bool, err error) {
	select {
	case s := <-t.idle:
		return s, true, nil
	default:
	}
	select {
	case t.open <- struct{}{}:
		s, err := t.openSession()
		if err != nil {
			<-t.open
			return 0, true, err
		}
		return s, true, nil
	default:
		return 0, false, nil
	}
}

// close closes the pool: idle sessions now, busy ones when returned.
func (t *token) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	t.drain()
}

// drain closes the idle sessions; the caller holds t.mu.
func (t *token) drain() {
	for {
		select {
		case s := <-t.idle:
			t.ctx.CloseSession(s)
			<-t.open
		default:
			return
		}
	}
}
