package auth

import "context"

// EAPRequest begins one EAP conversation inside IKE_AUTH (RFC 7296 §2.16).
// Server is true when the plugin authenticates the peer (the host is the
// IKE responder); otherwise the plugin is the EAP client (IKE initiator).
type EAPRequest struct {
	Connection string
	Method     string // the configured auth value: "eap", "eap-mschapv2", "eap-tls", "eap-md5"
	Server     bool
	LocalID    Identity
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
	// without one, such as EAP-MD5).
	MSK []byte
	// Identity is the peer's EAP identity as the server learned it.
	Identity []byte
	// Reason says why a conversation failed, in plain language.
	Reason string
}

// EAPSession is one EAP conversation. Step consumes the peer's EAP packet;
// a server's first call has in == nil and returns the first request.
// Close releases the session; the host always calls it.
type EAPSession interface {
	Step(ctx context.Context, in []byte) (*EAPStep, error)
	Close()
}

// EAPAuthenticator is implemented by auth plugins that run EAP. The host
// computes the MSK-based AUTH payloads itself, so Make and Verify of such
// a plugin are not called for EAP connections.
type EAPAuthenticator interface {
	Authenticator
	StartEAP(ctx context.Context, req *EAPRequest) (EAPSession, error)
}
