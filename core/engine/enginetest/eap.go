package enginetest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"sync"

	"github.com/veil-ipsec/veil/core/provider"
)

// EAP is an in-memory EAP method for engine tests: the server sends
// Rounds challenges (EAP type 254, experimental), the client answers each
// with HMAC-SHA-256(Password, challenge), and the server ends with Success
// and a 64-byte MSK derived from the password and the challenges (none
// when NoMSK), or Failure. Real methods live in plugins/auth/eap.
type EAP struct {
	PSK      // Make/Verify, for the server's own AUTH
	Password []byte
	Rounds   int  // challenges before Success (0: 1)
	NoMSK    bool // like EAP-MD5: no key, so AUTH falls back to SK_pi/SK_pr
	// Gate, when set, holds every Step until a value arrives: tests use it
	// to show that steps run off the engine lock.
	Gate chan struct{}

	mu                 sync.Mutex
	Started, Closed    int
	LastServerIdentity string
	LastRequest        provider.EAPRequest
}

// Open returns the number of sessions not yet closed.
func (m *EAP) Open() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.Started - m.Closed
}

// StartEAP implements provider.EAPAuthenticator.
func (m *EAP) StartEAP(_ context.Context, req *provider.EAPRequest) (provider.EAPSession, error) {
	m.mu.Lock()
	m.Started++
	m.LastRequest = *req
	m.mu.Unlock()
	return &eapSession{m: m, server: req.Server}, nil
}

type eapSession struct {
	m      *EAP
	server bool
	id     uint8
	round  int
	trans  []byte // challenges so far
	closed bool
}

const eapTestType = 254

func (s *eapSession) msk() []byte {
	if s.m.NoMSK {
		return nil
	}
	h := hmac.New(sha256.New, s.m.Password)
	h.Write(s.trans)
	a := h.Sum(nil)
	h.Write([]byte("second half"))
	return append(a, h.Sum(nil)...)
}

func (s *eapSession) Step(_ context.Context, in []byte) (*provider.EAPStep, error) {
	if g := s.m.Gate; g != nil {
		<-g
	}
	if s.closed {
		return nil, errors.New("session closed")
	}
	rounds := max(s.m.Rounds, 1)
	if s.server {
		if in != nil {
			if len(in) != 4+1+32 || in[0] != 2 || in[1] != s.id || in[4] != eapTestType {
				return nil, errors.New("malformed response")
			}
			h := hmac.New(sha256.New, s.m.Password)
			h.Write(s.trans[len(s.trans)-16:])
			if !hmac.Equal(in[5:], h.Sum(nil)) {
				s.id++
				return &provider.EAPStep{Message: []byte{4, s.id, 0, 4}, Done: true, Reason: "wrong password", Identity: []byte("tester")}, nil
			}
			if s.round == rounds {
				s.id++
				s.m.mu.Lock()
				s.m.LastServerIdentity = "tester"
				s.m.mu.Unlock()
				return &provider.EAPStep{Message: []byte{3, s.id, 0, 4}, Done: true, Success: true, MSK: s.msk(), Identity: []byte("tester")}, nil
			}
		}
		s.round++
		s.id++
		ch := make([]byte, 16)
		for i := range ch {
			ch[i] = byte(s.round*31 + i)
		}
		s.trans = append(s.trans, ch...)
		return &provider.EAPStep{Message: append([]byte{1, s.id, 0, 4 + 1 + 16, eapTestType}, ch...)}, nil
	}
	if len(in) < 4 {
		return nil, errors.New("short packet")
	}
	switch in[0] {
	case 3:
		return &provider.EAPStep{Done: true, Success: true, MSK: s.msk()}, nil
	case 4:
		return &provider.EAPStep{Done: true, Reason: "the server sent EAP-Failure"}, nil
	case 1:
		if len(in) != 4+1+16 || in[4] != eapTestType {
			return nil, errors.New("unexpected request")
		}
		s.trans = append(s.trans, in[5:]...)
		h := hmac.New(sha256.New, s.m.Password)
		h.Write(in[5:])
		return &provider.EAPStep{Message: append([]byte{2, in[1], 0, 4 + 1 + 32, eapTestType}, h.Sum(nil)...)}, nil
	}
	return nil, errors.New("unexpected EAP code")
}

func (s *eapSession) Close() {
	if s.closed {
		return
	}
	s.closed = true
	s.m.mu.Lock()
	s.m.Closed++
	s.m.mu.Unlock()
}
