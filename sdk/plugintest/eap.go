package plugintest

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/base"
)

// EAPCase is one conversation set-up for RunEAPConformance: a server and a
// client of the same plugin, configured with Config.
type EAPCase struct {
	Name string
	// Config is the JSON config for Configure (nil: "{}"), applied before
	// the case runs.
	Config []byte
	// Server starts the EAP server (Server must be true); Client starts a
	// client whose credentials the server accepts.
	Server, Client *auth.EAPRequest
	// WrongClient, if set, starts a client whose credentials the server
	// must reject.
	WrongClient *auth.EAPRequest
	// Identity, if set, is the EAP identity the server must learn.
	Identity string
	// NoMSK: the method derives no MSK (EAP-MD5); otherwise both sides
	// must report the same MSK of at least 64 bytes (RFC 3748 §7.10).
	NoMSK bool
}

// RunEAPConformance checks an EAP plugin over real gRPC, each case driving
// a server session against a client session of the plugin: the server's
// first step is an EAP Request; matching credentials end in Success on
// both sides with equal, fresh MSKs; wrong ones in Failure with a reason;
// Close is idempotent; garbage input gives an error or a Failure, never a
// Success or a panic; conversations run concurrently.
func RunEAPConformance(t *testing.T, impl auth.EAPAuthenticator, cases []EAPCase) {
	client := AuthClient(t, impl)
	var first []byte
	if len(cases) > 0 {
		first = cases[0].Config
	}
	checkBase(t, client, base.KindAuth, first)
	for i, c := range cases {
		name := c.Name
		if name == "" {
			name = fmt.Sprintf("case %d", i)
		}
		t.Run(name, func(t *testing.T) { runEAPCase(t, impl, client, c) })
	}
}

func runEAPCase(t *testing.T, impl auth.EAPAuthenticator, client *auth.Client, c EAPCase) {
	ctx := context.Background()
	if c.Server == nil || !c.Server.Server || c.Client == nil || c.Client.Server {
		t.Fatal("EAPCase needs Server (with Server true) and Client (with Server false)")
	}
	config := c.Config
	if config == nil {
		config = []byte("{}")
	}
	if err := client.Configure(ctx, config); err != nil {
		t.Fatalf("Configure(%s): %v", config, err)
	}
	start := func(t *testing.T, req *auth.EAPRequest) auth.EAPSession {
		t.Helper()
		s, err := client.StartEAP(ctx, req)
		if err != nil {
			t.Fatalf("StartEAP(%s, server %v): %v", req.Connection, req.Server, err)
		}
		t.Cleanup(s.Close)
		return s
	}

	t.Run("first step is a request", func(t *testing.T) {
		st, err := start(t, c.Server).Step(ctx, nil)
		if err != nil {
			t.Fatalf("server's Step(nil): %v", err)
		}
		if st.Done {
			t.Fatalf("server's first step ends the conversation: %+v", st)
		}
		if code, _, err := checkEAPPacket(st.Message); err != nil || code != eapRequest {
			t.Fatalf("server's first message is not an EAP Request: code %d, %v (% x)", code, err, st.Message)
		}
	})

	var msk []byte
	t.Run("success", func(t *testing.T) {
		s, cl, err := eapConverse(ctx, start(t, c.Server), start(t, c.Client))
		if err != nil {
			t.Fatal(err)
		}
		if !s.Done || !s.Success || !cl.Done || !cl.Success {
			t.Fatalf("server done %v success %v (%q), client done %v success %v (%q): want success on both sides",
				s.Done, s.Success, s.Reason, cl.Done, cl.Success, cl.Reason)
		}
		if code, _, err := checkEAPPacket(s.Message); err != nil || code != eapSuccess {
			t.Errorf("server's last message is not an EAP-Success: code %d, %v", code, err)
		}
		if len(cl.Message) != 0 {
			t.Errorf("client has %d bytes to send after EAP-Success", len(cl.Message))
		}
		checkMSKs(t, c, s, cl)
		msk = s.MSK
		if len(s.Identity) == 0 {
			t.Error("server reports no EAP identity")
		} else if c.Identity != "" && string(s.Identity) != c.Identity {
			t.Errorf("server learned EAP identity %q, want %q", s.Identity, c.Identity)
		}
	})

	if c.WrongClient != nil {
		t.Run("failure", func(t *testing.T) {
			s, cl, err := eapConverse(ctx, start(t, c.Server), start(t, c.WrongClient))
			if s != nil && s.Success || cl != nil && cl.Success {
				t.Fatalf("wrong credentials succeeded (server %v, client %v)", s != nil && s.Success, cl != nil && cl.Success)
			}
			if err != nil {
				noPanic(t, "conversation with wrong credentials", err)
				return // a clear error ends the conversation too
			}
			if !s.Done || s.Reason == "" || len(s.MSK) != 0 {
				t.Errorf("server: done %v, reason %q, %d MSK bytes; want done with a reason and no MSK", s.Done, s.Reason, len(s.MSK))
			}
			if code, _, err := checkEAPPacket(s.Message); err != nil || code != eapFailure {
				t.Errorf("server's last message is not an EAP-Failure: code %d, %v", code, err)
			}
			if !cl.Done || len(cl.MSK) != 0 {
				t.Errorf("client after EAP-Failure: done %v, %d MSK bytes", cl.Done, len(cl.MSK))
			}
		})
	}

	t.Run("close is idempotent", func(t *testing.T) {
		s := start(t, c.Server)
		if _, err := s.Step(ctx, nil); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s.Close()
		_, err := s.Step(ctx, []byte{2, 1, 0, 5, 1})
		if err == nil {
			t.Error("Step after Close succeeded")
		}
		// The plugin's own sessions, without the SDK's bookkeeping.
		for _, req := range []*auth.EAPRequest{c.Server, c.Client} {
			direct, err := impl.StartEAP(ctx, req)
			if err != nil {
				t.Fatalf("StartEAP in process: %v", err)
			}
			if err := callSafely(func() { direct.Close(); direct.Close() }); err != nil {
				t.Errorf("Close twice (server %v): %v", req.Server, err)
			}
			if err := callSafely(func() { _, _ = direct.Step(ctx, nil) }); err != nil {
				t.Errorf("Step after Close (server %v): %v", req.Server, err)
			}
		}
	})

	t.Run("garbage", func(t *testing.T) {
		for name, in := range garbageEAP() {
			srv := start(t, c.Server)
			if _, err := srv.Step(ctx, nil); err != nil {
				t.Fatal(err)
			}
			st, err := srv.Step(ctx, in)
			checkGarbageStep(t, "server given "+name, st, err)
			st, err = start(t, c.Client).Step(ctx, in)
			checkGarbageStep(t, "client given "+name, st, err)
		}
		// An EAP-Success before any authentication must not convince a
		// client (it would accept any gateway).
		cli := start(t, c.Client)
		st, err := cli.Step(ctx, []byte{eapSuccess, 1, 0, 4})
		noPanic(t, "client given an early EAP-Success", err)
		if err == nil && st.Success {
			t.Error("client reports success on an EAP-Success before any authentication")
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		const n = 8
		var wg sync.WaitGroup
		msks := make([][]byte, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv, err := client.StartEAP(ctx, c.Server)
				if err != nil {
					errs[i] = err
					return
				}
				defer srv.Close()
				cli, err := client.StartEAP(ctx, c.Client)
				if err != nil {
					errs[i] = err
					return
				}
				defer cli.Close()
				s, cl, err := eapConverse(ctx, srv, cli)
				switch {
				case err != nil:
					errs[i] = err
				case !s.Success || !cl.Success:
					errs[i] = fmt.Errorf("no success: server %q, client %q", s.Reason, cl.Reason)
				case !bytes.Equal(s.MSK, cl.MSK):
					errs[i] = fmt.Errorf("MSKs differ")
				default:
					msks[i] = s.MSK
				}
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("conversation %d: %v", i, err)
			}
		}
		if c.NoMSK {
			return
		}
		seen := map[string]bool{string(msk): true}
		for _, m := range msks {
			if m != nil && seen[string(m)] {
				t.Fatal("two conversations derived the same MSK: keys must be fresh per conversation")
			}
			seen[string(m)] = true
		}
	})
}

// EAP codes (RFC 3748 §4).
const (
	eapRequest  = 1
	eapResponse = 2
	eapSuccess  = 3
	eapFailure  = 4
)

// checkEAPPacket checks the header of an EAP packet (RFC 3748 §4): a
// known code, a Length equal to the packet's size, a type in requests and
// responses. It returns the code and identifier.
func checkEAPPacket(b []byte) (code, id byte, err error) {
	if len(b) < 4 {
		return 0, 0, fmt.Errorf("%d bytes, not an EAP packet", len(b))
	}
	code, id = b[0], b[1]
	if n := int(binary.BigEndian.Uint16(b[2:])); n != len(b) {
		return code, id, fmt.Errorf("length field %d in a %d-byte packet", n, len(b))
	}
	switch code {
	case eapRequest, eapResponse:
		if len(b) < 5 {
			return code, id, fmt.Errorf("code %d without a type", code)
		}
	case eapSuccess, eapFailure:
		if len(b) != 4 {
			return code, id, fmt.Errorf("code %d with %d bytes of data", code, len(b)-4)
		}
	default:
		return code, id, fmt.Errorf("unknown code %d", code)
	}
	return code, id, nil
}

// eapConverse runs a conversation to its end. It checks every packet on
// the way: the server sends Requests, the client answers each with a
// Response of the same identifier (RFC 3748 §4.1). On an error the steps
// so far are returned with it.
func eapConverse(ctx context.Context, srv, cli auth.EAPSession) (s, c *auth.EAPStep, err error) {
	s, err = srv.Step(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("server's first step: %w", err)
	}
	for round := 0; round < 64; round++ {
		reqCode, reqID, err := checkEAPPacket(s.Message)
		if err != nil {
			return s, c, fmt.Errorf("server's message in round %d: %w", round, err)
		}
		if !s.Done && reqCode != eapRequest {
			return s, c, fmt.Errorf("server sent code %d in round %d; before its last step it sends only Requests", reqCode, round)
		}
		if c != nil && c.Done {
			return s, c, nil // the client ended first; the server has seen its last word
		}
		if c, err = cli.Step(ctx, s.Message); err != nil {
			return s, c, fmt.Errorf("client step in round %d: %w", round, err)
		}
		if s.Done || c.Done && len(c.Message) == 0 {
			return s, c, nil
		}
		code, id, err := checkEAPPacket(c.Message)
		if err != nil {
			return s, c, fmt.Errorf("client's message in round %d: %w", round, err)
		}
		if code != eapResponse || id != reqID {
			return s, c, fmt.Errorf("client answered Request %d with code %d identifier %d; want a Response with the same identifier", reqID, code, id)
		}
		if s, err = srv.Step(ctx, c.Message); err != nil {
			return s, c, fmt.Errorf("server step in round %d: %w", round, err)
		}
	}
	return s, c, fmt.Errorf("the conversation did not end in 64 rounds")
}

func checkMSKs(t *testing.T, c EAPCase, s, cl *auth.EAPStep) {
	t.Helper()
	if !bytes.Equal(s.MSK, cl.MSK) {
		t.Errorf("MSKs differ: server %d bytes, client %d bytes", len(s.MSK), len(cl.MSK))
	}
	if !c.NoMSK && len(s.MSK) < 64 {
		t.Errorf("MSK of %d bytes; RFC 3748 §7.10 wants at least 64", len(s.MSK))
	}
	if !c.NoMSK && bytes.Equal(s.MSK, make([]byte, len(s.MSK))) {
		t.Error("MSK is all zeros")
	}
}

// garbageEAP are packets no conversation can go on with.
func garbageEAP() map[string][]byte {
	huge := bytes.Repeat([]byte{0xff}, auth.MaxEAPMessageLen)
	return map[string][]byte{
		"one byte":            {1},
		"header only":         {eapResponse, 1, 0, 4},
		"length past end":     {eapResponse, 1, 0, 200, 1, 'a'},
		"length under 4":      {eapResponse, 1, 0, 2, 1},
		"unknown code":        {9, 1, 0, 5, 1},
		"unknown type":        {eapResponse, 1, 0, 6, 254, 0},
		"expanded type":       {eapResponse, 1, 0, 12, 254, 0, 0, 0, 0, 0, 0, 1},
		"ffff":                huge,
		"random":              []byte(strings.Repeat("\x02\x07\x00\x10garbage!", 8)),
		"failure to a server": {eapFailure, 1, 0, 4},
		"request, odd type":   {eapRequest, 1, 0, 6, 200, 0},
	}
}

// checkGarbageStep: an error or a Failure are fine, and so is a Request
// asking again (RFC 3748 §4.1 discards bad packets); Success is not.
func checkGarbageStep(t *testing.T, what string, st *auth.EAPStep, err error) {
	t.Helper()
	noPanic(t, what, err)
	if err != nil {
		return
	}
	if st.Success {
		t.Errorf("%s: Success", what)
	}
	if len(st.MSK) != 0 {
		t.Errorf("%s: an MSK", what)
	}
}

// callSafely turns a panic of f into an error.
func callSafely(f func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	f()
	return nil
}
