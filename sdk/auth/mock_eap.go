package auth

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// EAPMock is a Mock that also runs EAP: an EAP-MD5-like exchange (Identity,
// then an MD5-Challenge, RFC 3748 §5.4) with a made-up 64-byte MSK. It is
// for tests of hosts and harnesses, not a secure method.
type EAPMock struct {
	Mock
	// Users are the server's EAP identities and their passwords.
	Users map[string]string
	// Identity (empty: the local IKE identity) and Password are the
	// client's credentials.
	Identity, Password string
	// StartEAPFn replaces the built-in conversation when set.
	StartEAPFn func(ctx context.Context, req *EAPRequest) (EAPSession, error)
	// Started and Closed count sessions (Close counts once per session).
	Started, Closed atomic.Int64
}

var _ EAPAuthenticator = (*EAPMock)(nil)

// EAP codes and types (RFC 3748 §4, §5).
const (
	eapRequest  = 1
	eapResponse = 2
	eapSuccess  = 3
	eapFailure  = 4

	eapTypeIdentity = 1
	eapTypeNak      = 3
	eapTypeMD5      = 4
)

func (m *EAPMock) StartEAP(ctx context.Context, req *EAPRequest) (EAPSession, error) {
	if m.StartEAPFn != nil {
		return m.StartEAPFn(ctx, req)
	}
	m.Started.Add(1)
	if req.Server {
		return &mockServer{m: m}, nil
	}
	id := m.Identity
	if id == "" {
		id = string(req.LocalID.Data)
	}
	return &mockClient{m: m, identity: id, password: []byte(m.Password)}, nil
}

// eapPacket builds code, id, length and, for requests and responses, the
// type and its data.
func eapPacket(code, id byte, typ byte, data []byte) []byte {
	n := 4
	if code == eapRequest || code == eapResponse {
		n += 1 + len(data)
	}
	b := make([]byte, 4, n)
	b[0], b[1] = code, id
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	if n > 4 {
		b = append(append(b, typ), data...)
	}
	return b
}

// parseEAP checks the header and returns code, id, type and type data
// (type 0 for Success and Failure).
func parseEAP(b []byte) (code, id, typ byte, data []byte, err error) {
	if len(b) < 4 {
		return 0, 0, 0, nil, fmt.Errorf("malformed EAP packet: %d bytes", len(b))
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n < 4 || n > len(b) {
		return 0, 0, 0, nil, fmt.Errorf("malformed EAP packet: length %d in %d bytes", n, len(b))
	}
	code, id, b = b[0], b[1], b[4:n]
	switch code {
	case eapRequest, eapResponse:
		if len(b) == 0 {
			return 0, 0, 0, nil, errors.New("malformed EAP packet: no type")
		}
		return code, id, b[0], b[1:], nil
	case eapSuccess, eapFailure:
		return code, id, 0, nil, nil
	}
	return 0, 0, 0, nil, fmt.Errorf("malformed EAP packet: code %d", code)
}

// md5Response is CHAP's MD5(id || secret || challenge) (RFC 1994 §4.1).
func md5Response(id byte, password, challenge []byte) []byte {
	h := md5.New()
	h.Write([]byte{id})
	h.Write(password)
	h.Write(challenge)
	return h.Sum(nil)
}

func mockMSK(password, challenge []byte) []byte {
	h := sha512.New()
	h.Write([]byte("veil EAPMock MSK"))
	h.Write(password)
	h.Write(challenge)
	return h.Sum(nil)
}

type mockServer struct {
	m         *EAPMock
	mu        sync.Mutex
	state     int // 0 fresh, 1 asked identity, 2 sent challenge, 3 done
	identity  string
	challenge []byte
	closed    bool
}

func (s *mockServer) Step(_ context.Context, in []byte) (*EAPStep, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(reason string) *EAPStep {
		id := byte(s.state) // the Response's identifier
		s.state = 3
		return &EAPStep{Message: eapPacket(eapFailure, id, 0, nil), Done: true, Reason: reason}
	}
	if s.closed {
		return nil, errors.New("EAP session is closed")
	}
	if s.state == 0 {
		if in != nil {
			return nil, errors.New("a server's first step takes no packet")
		}
		s.state = 1
		return &EAPStep{Message: eapPacket(eapRequest, 1, eapTypeIdentity, nil)}, nil
	}
	if s.state == 3 {
		return nil, errors.New("the EAP conversation is over")
	}
	code, id, typ, data, err := parseEAP(in)
	if err != nil {
		return nil, err
	}
	if code != eapResponse || int(id) != s.state {
		return nil, fmt.Errorf("expected EAP Response %d, got code %d id %d", s.state, code, id)
	}
	if typ == eapTypeNak {
		return fail("the peer refused EAP-MD5"), nil
	}
	switch s.state {
	case 1:
		if typ != eapTypeIdentity {
			return nil, fmt.Errorf("expected an Identity response, got type %d", typ)
		}
		s.identity = string(data)
		if _, ok := s.m.Users[s.identity]; !ok {
			return fail(fmt.Sprintf("unknown EAP identity %q", s.identity)), nil
		}
		s.challenge = make([]byte, 16)
		rand.Read(s.challenge)
		s.state = 2
		return &EAPStep{Message: eapPacket(eapRequest, 2, eapTypeMD5, append([]byte{16}, s.challenge...))}, nil
	default: // 2
		if typ != eapTypeMD5 || len(data) < 1 || int(data[0]) != md5.Size || len(data) < 1+md5.Size {
			return nil, errors.New("malformed MD5-Challenge response")
		}
		pw := []byte(s.m.Users[s.identity])
		want := md5Response(id, pw, s.challenge)
		if subtle.ConstantTimeCompare(want, data[1:1+md5.Size]) != 1 {
			return fail(fmt.Sprintf("wrong password for EAP identity %q", s.identity)), nil
		}
		s.state = 3
		return &EAPStep{Message: eapPacket(eapSuccess, id, 0, nil), Done: true, Success: true,
			MSK: mockMSK(pw, s.challenge), Identity: []byte(s.identity)}, nil
	}
}

func (s *mockServer) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		clear(s.challenge)
		s.m.Closed.Add(1)
	}
}

type mockClient struct {
	m        *EAPMock
	mu       sync.Mutex
	identity string
	password []byte
	msk      []byte
	done     bool
	closed   bool
}

func (c *mockClient) Step(_ context.Context, in []byte) (*EAPStep, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("EAP session is closed")
	}
	if c.done {
		return nil, errors.New("the EAP conversation is over")
	}
	code, id, typ, data, err := parseEAP(in)
	if err != nil {
		return nil, err
	}
	switch code {
	case eapSuccess:
		c.done = true
		if c.msk == nil {
			return &EAPStep{Done: true, Reason: "EAP-Success before the server checked us"}, nil
		}
		msk := c.msk
		c.msk = nil
		return &EAPStep{Done: true, Success: true, MSK: msk}, nil
	case eapFailure:
		c.done = true
		return &EAPStep{Done: true, Reason: "the server sent EAP-Failure"}, nil
	case eapResponse:
		return nil, errors.New("an EAP client got an EAP Response")
	}
	switch typ {
	case eapTypeIdentity:
		return &EAPStep{Message: eapPacket(eapResponse, id, eapTypeIdentity, []byte(c.identity))}, nil
	case eapTypeMD5:
		if len(data) < 1 || int(data[0]) == 0 || len(data) < 1+int(data[0]) {
			return nil, errors.New("malformed MD5-Challenge request")
		}
		challenge := data[1 : 1+int(data[0])]
		clear(c.msk)
		c.msk = mockMSK(c.password, challenge)
		resp := append([]byte{md5.Size}, md5Response(id, c.password, challenge)...)
		return &EAPStep{Message: eapPacket(eapResponse, id, eapTypeMD5, resp)}, nil
	}
	// Any other method: Nak, asking for MD5.
	return &EAPStep{Message: eapPacket(eapResponse, id, eapTypeNak, []byte{eapTypeMD5})}, nil
}

func (c *mockClient) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		clear(c.password)
		clear(c.msk)
		c.m.Closed.Add(1)
	}
}
