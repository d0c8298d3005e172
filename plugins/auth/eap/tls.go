package eap

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// EAP-TLS (RFC 5216, and RFC 9190 for TLS 1.3) runs crypto/tls over an
// in-memory connection: the handshake runs in a goroutine, and each time
// it waits for the peer's bytes the EAP side takes what it wrote and sends
// it, fragmented, in EAP-TLS packets.

// EAP-TLS flags.
const (
	tlsFlagLength = 0x80
	tlsFlagMore   = 0x40
	tlsFlagStart  = 0x20
)

const (
	// tlsFragment keeps each EAP packet, inside its IKE message, below a
	// 1280-byte path MTU.
	tlsFragment = 1000
	// tlsMaxMessage bounds one reassembled flight.
	tlsMaxMessage = 64 << 10
	// TLS 1.3's MSK label and context (RFC 9190 §2.3); TLS 1.2's (RFC 5216 §2.3).
	tls13Label = "EXPORTER_EAP_TLS_Key_Material"
	tls12Label = "client EAP encryption"
)

// tlsMaxVersion caps the TLS version (0: crypto/tls's newest); tests set it.
var tlsMaxVersion uint16

// turn is what the handshake goroutine says when it stops: it waits for
// input, or it is done (with err).
type turn struct {
	done bool
	err  error
}

// tlsPipe is the net.Conn crypto/tls reads and writes.
type tlsPipe struct {
	in      chan []byte
	turns   chan turn
	closed  chan struct{}
	pending []byte
	out     []byte
}

func (p *tlsPipe) Read(b []byte) (int, error) {
	for len(p.pending) == 0 {
		select {
		case p.turns <- turn{}:
		case <-p.closed:
			return 0, net.ErrClosed
		}
		select {
		case p.pending = <-p.in:
		case <-p.closed:
			return 0, net.ErrClosed
		}
	}
	n := copy(b, p.pending)
	p.pending = p.pending[n:]
	return n, nil
}

func (p *tlsPipe) Write(b []byte) (int, error) {
	p.out = append(p.out, b...)
	return len(b), nil
}

func (p *tlsPipe) Close() error                     { return nil }
func (p *tlsPipe) LocalAddr() net.Addr              { return eapAddr{} }
func (p *tlsPipe) RemoteAddr() net.Addr             { return eapAddr{} }
func (p *tlsPipe) SetDeadline(time.Time) error      { return nil }
func (p *tlsPipe) SetReadDeadline(time.Time) error  { return nil }
func (p *tlsPipe) SetWriteDeadline(time.Time) error { return nil }

type eapAddr struct{}

func (eapAddr) Network() string { return "eap" }
func (eapAddr) String() string  { return "eap" }

// tlsConv is one side's TLS session and EAP-TLS fragmentation state.
type tlsConv struct {
	pipe    *tlsPipe
	conn    *tls.Conn
	started bool
	done    bool
	err     error
	msk     []byte

	out      []byte // rest of the flight being sent
	outTotal int    // its whole length, for the L flag of the first fragment
	in       []byte // flight being reassembled
	inTotal  int
}

// begin starts the handshake; hs runs in its goroutine.
func (t *tlsConv) begin(conn *tls.Conn, hs func() error) []byte {
	t.conn, t.started = conn, true
	go func() {
		err := hs()
		select {
		case t.pipe.turns <- turn{done: true, err: err}:
		case <-t.pipe.closed:
		}
	}()
	return t.run(nil)
}

// run gives the handshake the peer's flight and returns what it wrote
// before it stopped again.
func (t *tlsConv) run(flight []byte) []byte {
	if flight != nil {
		t.pipe.in <- flight
	}
	tr := <-t.pipe.turns
	out := t.pipe.out
	t.pipe.out = nil
	if tr.done {
		t.done, t.err = true, tr.err
		if t.err == nil {
			t.msk, t.err = exportMSK(t.conn)
		}
	}
	return out
}

func exportMSK(c *tls.Conn) ([]byte, error) {
	cs := c.ConnectionState()
	var km []byte
	var err error
	if cs.Version >= tls.VersionTLS13 {
		km, err = cs.ExportKeyingMaterial(tls13Label, []byte{TypeTLS}, 128)
	} else {
		km, err = cs.ExportKeyingMaterial(tls12Label, nil, 128)
	}
	if err != nil {
		return nil, fmt.Errorf("EAP-TLS key export: %w", err)
	}
	msk := append([]byte(nil), km[:64]...) // the rest is the EMSK, unused
	clear(km)
	return msk, nil
}

// send queues a flight and returns its first fragment.
func (t *tlsConv) send(flight []byte) []byte {
	t.out, t.outTotal = flight, len(flight)
	return t.fragment()
}

// fragment returns the next EAP-TLS type-data of the queued flight; with
// nothing queued, an empty acknowledgement.
func (t *tlsConv) fragment() []byte {
	n := min(len(t.out), tlsFragment)
	var flags byte
	b := []byte{0}
	if len(t.out) == t.outTotal && t.outTotal > tlsFragment {
		flags |= tlsFlagLength
		b = binary.BigEndian.AppendUint32(b, uint32(t.outTotal))
	}
	if n < len(t.out) {
		flags |= tlsFlagMore
	}
	b[0] = flags
	b = append(b, t.out[:n]...)
	t.out = t.out[n:]
	return b
}

// isAck says whether an EAP-TLS packet is an acknowledgement: no TLS
// data and no more to come (some peers set the L flag even here).
func isAck(data []byte) bool {
	if len(data) < 1 || data[0]&(tlsFlagMore|tlsFlagStart) != 0 {
		return false
	}
	if data[0]&tlsFlagLength != 0 {
		return len(data) == 5
	}
	return len(data) == 1
}

// sending says whether fragments of a flight are still to go.
func (t *tlsConv) sending() bool { return len(t.out) > 0 }

// receive adds one EAP-TLS packet's type-data to the flight being
// reassembled. It returns the whole flight, or more = true when the peer
// has more fragments to send (and wants an acknowledgement).
func (t *tlsConv) receive(data []byte) (flight []byte, more bool, err error) {
	if len(data) < 1 {
		return nil, false, errors.New("EAP-TLS packet without flags")
	}
	flags := data[0]
	data = data[1:]
	if flags&tlsFlagLength != 0 {
		if len(data) < 4 {
			return nil, false, errors.New("EAP-TLS packet with the L flag but no length")
		}
		total := int(binary.BigEndian.Uint32(data))
		data = data[4:]
		if total > tlsMaxMessage {
			return nil, false, fmt.Errorf("EAP-TLS message of %d bytes is too large", total)
		}
		if t.in == nil {
			t.inTotal = total
		}
	}
	if len(t.in)+len(data) > tlsMaxMessage {
		return nil, false, errors.New("EAP-TLS message is too large")
	}
	t.in = append(t.in, data...)
	if flags&tlsFlagMore != 0 {
		if len(data) == 0 {
			return nil, false, errors.New("EAP-TLS fragment without data")
		}
		return nil, true, nil
	}
	flight = t.in
	if t.inTotal != 0 && len(flight) != t.inTotal {
		return nil, false, fmt.Errorf("EAP-TLS message is %d bytes, its length field said %d", len(flight), t.inTotal)
	}
	t.in, t.inTotal = nil, 0
	return flight, false, nil
}

func (t *tlsConv) close() {
	select {
	case <-t.pipe.closed:
	default:
		close(t.pipe.closed)
	}
	clear(t.msk)
}

func newTLSConv() tlsConv {
	return tlsConv{pipe: &tlsPipe{in: make(chan []byte), turns: make(chan turn), closed: make(chan struct{})}}
}

// tlsServer is the EAP-TLS authenticator: it requires a client
// certificate that chains to the configured CAs and names the EAP
// identity the peer gave, so a certificate cannot log in as another user.
type tlsServer struct {
	tlsConv
	cfg *tls.Config
}

func newTLSServer(cert *tls.Certificate, roots *x509.CertPool, identity []byte) *tlsServer {
	return &tlsServer{tlsConv: newTLSConv(), cfg: &tls.Config{
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !certNames(cs.PeerCertificates[0], string(identity)) {
				return fmt.Errorf("EAP identity %q is not named in the client certificate", identity)
			}
			return nil
		},
		Certificates:           []tls.Certificate{*cert},
		ClientAuth:             tls.RequireAndVerifyClientCert,
		ClientCAs:              roots,
		MinVersion:             tls.VersionTLS12,
		MaxVersion:             tlsMaxVersion,
		SessionTicketsDisabled: true, // no resumption; RFC 9190 tickets are not needed
	}}
}

func (s *tlsServer) typ() uint8 { return TypeTLS }

func (s *tlsServer) start(uint8) ([]byte, error) {
	conn := tls.Server(s.pipe, s.cfg)
	s.begin(conn, func() error {
		if err := conn.Handshake(); err != nil {
			return err
		}
		if conn.ConnectionState().Version >= tls.VersionTLS13 {
			// The commitment message: no more handshake messages follow
			// (RFC 9190 §2.1.1).
			_, err := conn.Write([]byte{0})
			return err
		}
		return nil
	})
	return []byte{tlsFlagStart}, nil
}

func (s *tlsServer) next(_ uint8, data []byte) ([]byte, *result, error) {
	if s.sending() {
		if !isAck(data) {
			return nil, nil, errors.New("EAP-TLS: expected an acknowledgement of our fragment")
		}
		return s.fragment(), nil, nil
	}
	flight, more, err := s.receive(data)
	if err != nil {
		return nil, nil, err
	}
	if more {
		return []byte{0}, nil, nil
	}
	if len(flight) == 0 {
		// The acknowledgement of our last flight.
		if s.done && s.err == nil {
			return nil, &result{ok: true, msk: s.msk}, nil
		}
		return nil, nil, errors.New("EAP-TLS: the peer sent nothing while the handshake is not done")
	}
	if s.done {
		return nil, nil, errors.New("EAP-TLS: data after the handshake ended")
	}
	out := s.run(flight)
	if s.done && s.err != nil {
		return nil, &result{reason: "EAP-TLS: " + s.err.Error()}, nil
	}
	if len(out) == 0 {
		return nil, nil, errors.New("EAP-TLS: the handshake stalled")
	}
	return s.send(out), nil, nil
}

// certNames says whether a certificate names id: as its subject's common
// name or whole DN, or as a DNS or e-mail subjectAltName.
func certNames(c *x509.Certificate, id string) bool {
	if id == c.Subject.CommonName || id == c.Subject.String() {
		return true
	}
	for _, n := range c.DNSNames {
		if strings.EqualFold(n, id) {
			return true
		}
	}
	for _, n := range c.EmailAddresses {
		if strings.EqualFold(n, id) {
			return true
		}
	}
	return false
}

// tlsClient is the EAP-TLS peer: it checks the server's certificate
// against the configured CAs and presents its own.
type tlsClient struct {
	tlsConv
	cfg *tls.Config
}

func newTLSClient(cert *tls.Certificate, roots *x509.CertPool) *tlsClient {
	cfg := &tls.Config{
		Certificates: []tls.Certificate{*cert},
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   tlsMaxVersion,
		// The server's name is not known here (a RADIUS server's
		// certificate names the RADIUS server, not the gateway): the
		// chain to the configured CAs is checked instead.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the EAP-TLS server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots: roots, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				return fmt.Errorf("the EAP-TLS server's certificate: %w", err)
			}
			return nil
		},
	}
	return &tlsClient{tlsConv: newTLSConv(), cfg: cfg}
}

func (c *tlsClient) typ() uint8 { return TypeTLS }

func (c *tlsClient) next(_ uint8, data []byte) ([]byte, error) {
	if len(data) < 1 {
		return nil, errors.New("EAP-TLS request without flags")
	}
	if !c.started {
		if data[0]&tlsFlagStart == 0 {
			return nil, errors.New("EAP-TLS: the server did not start")
		}
		conn := tls.Client(c.pipe, c.cfg)
		hello := c.begin(conn, func() error {
			if err := conn.Handshake(); err != nil {
				return err
			}
			if conn.ConnectionState().Version >= tls.VersionTLS13 {
				var b [1]byte
				if _, err := conn.Read(b[:]); err != nil {
					return err
				}
				if b[0] != 0 {
					return errors.New("EAP-TLS 1.3: the server's commitment message is not 0x00")
				}
			}
			return nil
		})
		return c.send(hello), nil
	}
	if data[0]&tlsFlagStart != 0 {
		return nil, errors.New("EAP-TLS: the server started again")
	}
	if c.sending() {
		if !isAck(data) {
			return nil, errors.New("EAP-TLS: expected an acknowledgement of our fragment")
		}
		return c.fragment(), nil
	}
	flight, more, err := c.receive(data)
	if err != nil {
		return nil, err
	}
	if more {
		return []byte{0}, nil
	}
	if len(flight) == 0 || c.done {
		return nil, errors.New("EAP-TLS: unexpected request")
	}
	out := c.run(flight)
	if c.done && c.err != nil && len(out) == 0 {
		return nil, fmt.Errorf("EAP-TLS: %w", c.err)
	}
	// Our next flight, the alert of a failed handshake, or (out empty)
	// the acknowledgement of the server's last flight.
	return c.send(out), nil
}

func (c *tlsClient) finished() bool { return c.done && c.err == nil }
func (c *tlsClient) key() []byte    { return c.msk }

func (c *tlsClient) failure() string {
	if c.err != nil {
		return "EAP-TLS: " + c.err.Error()
	}
	return ""
}
