package provider

import "context"

// EAPRequest begins one EAP conversation inside IKE_AUTH (RFC 7296 §2.16).
// Server is true when we authenticate the peer (we are the IKE responder);
// otherwise we are the EAP client (the IKE initiator).
type EAPRequest struct {
	Connection string
	Method     string // the configured auth value: "eap", "eap-mschapv2", "eap-tls", "eap-md5"
	Server     bool
	LocalID    Identity // IKE identities, for the EAP identity default and logs
	RemoteID   Identity
}

// EAPStep is what a conversation says after one message.
type EAPStep struct {
	// Message is the EAP packet (RFC 3748) to send to the peer; nil when
	// there is nothing to send (a client that has just seen Success).
	Message []byte
	// Done ends the conversation; Success says how. A server's last step
	// carries the EAP-Success or EAP-Failure packet in Message.
	Done, Success bool
	// MSK is the method's Master Session Key on success (nil for methods
	// without one, such as EAP-MD5). The caller zeroes it.
	MSK []byte
	// Identity is the peer's EAP identity as the server learned it.
	Identity []byte
	// Reason says why a conversation failed, in plain language for
	// operators (never key material).
	Reason string
}

// EAPSession is one EAP conversation. Step consumes the peer's EAP packet;
// a server's first call has in == nil and returns the first request.
// Close releases the session (and zeroes its keys); it is always called.
type EAPSession interface {
	Step(ctx context.Context, in []byte) (*EAPStep, error)
	Close()
}

// EAPAuthenticator is an Authenticator that can run EAP conversations. The
// engine computes the MSK-based AUTH payloads itself.
type EAPAuthenticator interface {
	Authenticator
	StartEAP(ctx context.Context, req *EAPRequest) (EAPSession, error)
}
