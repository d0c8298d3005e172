package eap

import (
	"errors"
	"time"

	"github.com/veil-ipsec/veil/sdk/auth"
)

// This file stands in for radius.go (RADIUS pass-through, RFC 3579) until
// it lands; radius.go replaces it.

type radiusConfig struct {
	Server  string
	Secret  []byte
	Timeout time.Duration
}

func newRADIUSSession(c *radiusConfig, req *auth.EAPRequest) (auth.EAPSession, error) {
	clear(c.Secret)
	return nil, errors.New("RADIUS pass-through is not available in this build")
}
