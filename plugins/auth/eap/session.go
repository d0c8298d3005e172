package eap

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/veil-ipsec/veil/sdk/auth"
)

// maxRounds bounds a conversation: EAP-TLS with large certificate chains
// in 1000-byte fragments is the longest; anything past this is a loop.
const maxRounds = 256

// result ends a server method.
type result struct {
	ok     bool
	msk    []byte
	reason string
}

// serverMethod is one method on the authenticator side. start returns the
// type-data of the first request; next consumes a response's type-data
// and returns the next request's, or the result.
type serverMethod interface {
	typ() uint8
	start(id uint8) ([]byte, error)
	next(id uint8, data []byte) ([]byte, *result, error)
	close()
}

// clientMethod is one method on the peer side. next answers a request's
// type-data; finished says whether an EAP-Success may now be believed.
type clientMethod interface {
	typ() uint8
	next(id uint8, data []byte) ([]byte, error)
	finished() bool
	key() []byte
	failure() string
	close()
}

// server is the EAP authenticator (veil is the IKE responder). mu
// serialises Step and Close: the host may close a session on a timeout
// while a step runs.
type server struct {
	mu      sync.Mutex
	p       *Plugin
	conn    *conn
	offer   []uint8 // methods we run, preferred first
	id      uint8
	started bool
	done    bool
	nak     bool // the peer has sent its one Nak
	rounds  int

	identity []byte
	m        serverMethod
	answered bool // the current method got a response
}

func (p *Plugin) newServer(req *auth.EAPRequest, method string, c *conn) (*server, error) {
	s := &server{p: p, conn: c}
	tlsOK := c != nil && c.cert != nil && c.roots != nil
	pwOK := len(p.users) > 0
	switch method {
	case "eap-tls":
		if !tlsOK {
			return nil, fmt.Errorf("connection %q: an EAP-TLS server needs a certificate, its key and cacerts for client certificates", req.Connection)
		}
		s.offer = []uint8{TypeTLS}
	case "eap-mschapv2", "eap-md5":
		if !pwOK {
			return nil, fmt.Errorf("connection %q: %s needs users (or radius_server) in the eap plugin block", req.Connection, method)
		}
		s.offer = []uint8{TypeMSCHAPv2}
		if method == "eap-md5" {
			s.offer = []uint8{TypeMD5}
		}
	default: // "eap": the strongest we can run
		if tlsOK {
			s.offer = append(s.offer, TypeTLS)
		}
		if pwOK {
			s.offer = append(s.offer, TypeMSCHAPv2)
			if p.allowMD5 {
				s.offer = append(s.offer, TypeMD5)
			}
		}
		if len(s.offer) == 0 {
			return nil, fmt.Errorf("connection %q: no EAP method can run (EAP-TLS needs a certificate, key and cacerts%s; password methods need users or radius_server)", req.Connection, tlsWhy(c))
		}
	}
	var b [1]byte
	rand.Read(b[:])
	s.id = b[0]
	return s, nil
}

func (s *server) request(typ uint8, data []byte) *auth.EAPStep {
	s.id++
	return &auth.EAPStep{Message: (&Packet{Code: CodeRequest, ID: s.id, Type: typ, Data: data}).Marshal()}
}

// finish ends the conversation with EAP-Success or EAP-Failure; its
// identifier is the one of the response it answers (RFC 3748 §4.2).
func (s *server) finish(r *result) *auth.EAPStep {
	s.done = true
	st := &auth.EAPStep{Done: true, Success: r.ok, Identity: s.identity}
	if r.ok {
		st.Message = (&Packet{Code: CodeSuccess, ID: s.id}).Marshal()
		st.MSK = append([]byte(nil), r.msk...)
	} else {
		st.Message = (&Packet{Code: CodeFailure, ID: s.id}).Marshal()
		st.Reason = r.reason
	}
	return st
}

func (s *server) Step(_ context.Context, in []byte) (*auth.EAPStep, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil, errors.New("the EAP conversation has ended")
	}
	if in == nil {
		if s.started {
			return nil, errors.New("EAP server: no response to the last request")
		}
		s.started = true
		return s.request(TypeIdentity, nil), nil
	}
	if !s.started {
		return nil, errors.New("EAP server: a response before any request")
	}
	if s.rounds++; s.rounds > maxRounds {
		return s.finish(&result{reason: "the EAP conversation took too many rounds"}), nil
	}
	pk, err := ParsePacket(in)
	if err != nil {
		return nil, err
	}
	if pk.Code != CodeResponse {
		return nil, fmt.Errorf("EAP server: got code %d, expected a response", pk.Code)
	}
	if pk.ID != s.id {
		return nil, fmt.Errorf("EAP response %d does not answer request %d", pk.ID, s.id)
	}
	if s.identity == nil {
		if pk.Type != TypeIdentity {
			return s.finish(&result{reason: fmt.Sprintf("the peer answered the identity request with %s", typeName(pk.Type))}), nil
		}
		if len(pk.Data) == 0 || len(pk.Data) > 253 || bytes.IndexByte(pk.Data, 0) >= 0 {
			return s.finish(&result{reason: "the peer's EAP identity is empty, too long or holds NUL"}), nil
		}
		s.identity = pk.Data
		if s.conn != nil && s.conn.eapID != "" && s.conn.eapID != "%any" && s.conn.eapID != string(s.identity) {
			return s.finish(&result{reason: fmt.Sprintf("EAP identity %q is not the expected %q", s.identity, s.conn.eapID)}), nil
		}
		return s.startMethod(s.offer[0])
	}
	if pk.Type == TypeNak {
		if s.nak || s.answered {
			return s.finish(&result{reason: "the peer sent a Nak in the middle of a method"}), nil
		}
		s.nak = true
		for _, want := range pk.Data {
			for _, t := range s.offer {
				if t == want && t != s.m.typ() {
					return s.startMethod(t)
				}
			}
		}
		return s.finish(&result{reason: fmt.Sprintf("the peer refused %s and wants none we offer (it asked for %v)", typeName(s.m.typ()), pk.Data)}), nil
	}
	if pk.Type != s.m.typ() {
		return s.finish(&result{reason: fmt.Sprintf("the peer answered %s with %s", typeName(s.m.typ()), typeName(pk.Type))}), nil
	}
	s.answered = true
	data, r, err := s.m.next(s.id, pk.Data)
	if err != nil {
		return s.finish(&result{reason: err.Error()}), nil
	}
	if r != nil {
		return s.finish(r), nil
	}
	return s.request(s.m.typ(), data), nil
}

func (s *server) startMethod(t uint8) (*auth.EAPStep, error) {
	if s.m != nil {
		s.m.close()
	}
	s.answered = false
	switch t {
	case TypeTLS:
		s.m = newTLSServer(s.conn.cert, s.conn.roots, s.identity)
	case TypeMSCHAPv2:
		pw := s.p.password(s.identity)
		s.m = newMSCHAPServer(s.identity, pw)
		clear(pw)
	case TypeMD5:
		s.m = &md5Server{password: s.p.password(s.identity)}
	}
	data, err := s.m.start(s.id + 1)
	if err != nil {
		return s.finish(&result{reason: err.Error()}), nil
	}
	return s.request(t, data), nil
}

// tlsWhy says why a connection's EAP-TLS credentials did not load.
func tlsWhy(c *conn) string {
	if c == nil || c.tlsErr == nil {
		return ""
	}
	return ": " + c.tlsErr.Error()
}

// password returns a copy of an EAP user's password, or nil.
func (p *Plugin) password(identity []byte) []byte {
	p.mu.RLock()
	defer p.mu.RUnlock()
	pw, ok := p.users[string(identity)]
	if !ok {
		return nil
	}
	return append([]byte(nil), pw...)
}

func (s *server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m != nil {
		s.m.close()
	}
	s.done = true
}

// client is the EAP peer (veil is the IKE initiator).
type client struct {
	mu       sync.Mutex
	identity []byte
	password []byte
	conn     *conn
	allow    []uint8 // methods we may run, preferred first
	m        clientMethod
	done     bool
	rounds   int
}

func (p *Plugin) newClient(req *auth.EAPRequest, method string, c *conn) (*client, error) {
	cl := &client{conn: c, identity: []byte(c.eapID)}
	if len(cl.identity) == 0 {
		cl.identity = []byte(identityText(req.LocalID))
	}
	if len(cl.identity) == 0 {
		return nil, fmt.Errorf("connection %q: no EAP identity (set eap_id or the local id)", req.Connection)
	}
	tlsOK := c.cert != nil && c.roots != nil
	pwOK := c.password != nil
	switch method {
	case "eap-tls":
		if !tlsOK {
			return nil, fmt.Errorf("connection %q: an EAP-TLS client needs a certificate, its key and cacerts for the server's certificate", req.Connection)
		}
		cl.allow = []uint8{TypeTLS}
	case "eap-mschapv2", "eap-md5":
		if !pwOK {
			return nil, fmt.Errorf("connection %q: %s needs a password (psk = \"file:...\")", req.Connection, method)
		}
		cl.allow = []uint8{TypeMSCHAPv2}
		if method == "eap-md5" {
			cl.allow = []uint8{TypeMD5}
		}
	default:
		if tlsOK {
			cl.allow = append(cl.allow, TypeTLS)
		}
		if pwOK {
			cl.allow = append(cl.allow, TypeMSCHAPv2)
			if p.allowMD5 {
				cl.allow = append(cl.allow, TypeMD5)
			}
		}
		if len(cl.allow) == 0 {
			return nil, fmt.Errorf("connection %q: no EAP credentials (a password, or certificate, key and cacerts%s)", req.Connection, tlsWhy(c))
		}
	}
	if pwOK {
		cl.password = append([]byte(nil), c.password...)
	}
	return cl, nil
}

func (c *client) fail(reason string) *auth.EAPStep {
	c.done = true
	return &auth.EAPStep{Done: true, Reason: reason}
}

func (c *client) Step(_ context.Context, in []byte) (*auth.EAPStep, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return nil, errors.New("the EAP conversation has ended")
	}
	if in == nil {
		return nil, errors.New("an EAP client speaks only when asked")
	}
	if c.rounds++; c.rounds > maxRounds {
		return c.fail("the EAP conversation took too many rounds"), nil
	}
	pk, err := ParsePacket(in)
	if err != nil {
		return nil, err
	}
	switch pk.Code {
	case CodeSuccess:
		if c.m == nil || !c.m.finished() {
			// A server that skips the method has proven nothing.
			return c.fail("the EAP server sent Success before the method finished"), nil
		}
		c.done = true
		return &auth.EAPStep{Done: true, Success: true, MSK: append([]byte(nil), c.m.key()...)}, nil
	case CodeFailure:
		reason := "the EAP server refused authentication"
		if c.m != nil {
			reason += " during " + typeName(c.m.typ())
			if c.m.failure() != "" {
				reason = c.m.failure()
			}
		}
		return c.fail(reason), nil
	case CodeResponse:
		return nil, errors.New("EAP client: got a response, expected a request")
	}
	respond := func(typ uint8, data []byte) *auth.EAPStep {
		return &auth.EAPStep{Message: (&Packet{Code: CodeResponse, ID: pk.ID, Type: typ, Data: data}).Marshal()}
	}
	switch pk.Type {
	case TypeIdentity:
		return respond(TypeIdentity, c.identity), nil
	case TypeNotification:
		return respond(TypeNotification, nil), nil
	case TypeNak, TypeExpanded:
		return nil, fmt.Errorf("EAP client: %s in a request", typeName(pk.Type))
	}
	if c.m == nil {
		if !bytes.Contains(c.allow, []byte{pk.Type}) {
			return respond(TypeNak, c.allow), nil
		}
		switch pk.Type {
		case TypeTLS:
			c.m = newTLSClient(c.conn.cert, c.conn.roots)
		case TypeMSCHAPv2:
			c.m = newMSCHAPClient(c.identity, c.password)
		case TypeMD5:
			c.m = &md5Client{password: append([]byte(nil), c.password...)}
		}
	} else if pk.Type != c.m.typ() {
		return c.fail(fmt.Sprintf("the EAP server switched from %s to %s", typeName(c.m.typ()), typeName(pk.Type))), nil
	}
	data, err := c.m.next(pk.ID, pk.Data)
	if err != nil {
		return c.fail(err.Error()), nil
	}
	return respond(pk.Type, data), nil
}

func (c *client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m != nil {
		c.m.close()
	}
	clear(c.password)
	c.done = true
}
