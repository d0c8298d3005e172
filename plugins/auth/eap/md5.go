package eap

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"errors"
)

// EAP-MD5 (RFC 3748 §5.4) is CHAP over EAP: response = MD5(ID | password |
// challenge). It has no MSK and does not authenticate the server, so it is
// refused unless allow_md5 is set (for labs and interop tests only).

type md5Server struct {
	password  []byte // nil: unknown identity
	id        uint8
	challenge [16]byte
}

func (s *md5Server) typ() uint8 { return TypeMD5 }

// start's id is the EAP identifier of the request that carries the
// challenge: the response hash covers it.
func (s *md5Server) start(id uint8) ([]byte, error) {
	s.id = id
	rand.Read(s.challenge[:])
	return append(append([]byte{16}, s.challenge[:]...), serverName...), nil
}

func (s *md5Server) next(_ uint8, data []byte) ([]byte, *result, error) {
	if len(data) < 1 || int(data[0]) != md5.Size || len(data) < 1+md5.Size {
		return nil, nil, errors.New("EAP-MD5 response is malformed")
	}
	if s.password == nil {
		return nil, &result{reason: "EAP-MD5: unknown EAP identity"}, nil
	}
	want := md5Response(s.id, s.password, s.challenge[:])
	if subtle.ConstantTimeCompare(want, data[1:1+md5.Size]) != 1 {
		return nil, &result{reason: "EAP-MD5: wrong password"}, nil
	}
	return nil, &result{ok: true}, nil
}

func (s *md5Server) close() { clear(s.password) }

func md5Response(id uint8, password, challenge []byte) []byte {
	h := md5.New()
	h.Write([]byte{id})
	h.Write(password)
	h.Write(challenge)
	return h.Sum(nil)
}

type md5Client struct {
	password []byte
	answered bool
}

func (c *md5Client) typ() uint8 { return TypeMD5 }

// next answers a challenge; id is the request's EAP identifier.
func (c *md5Client) next(id uint8, data []byte) ([]byte, error) {
	if len(data) < 1 || data[0] == 0 || len(data) < 1+int(data[0]) {
		return nil, errors.New("EAP-MD5 challenge is malformed")
	}
	c.answered = true
	return append([]byte{md5.Size}, md5Response(id, c.password, data[1:1+int(data[0])])...), nil
}

func (c *md5Client) finished() bool  { return c.answered }
func (c *md5Client) key() []byte     { return nil }
func (c *md5Client) failure() string { return "" }
func (c *md5Client) close()          { clear(c.password) }
