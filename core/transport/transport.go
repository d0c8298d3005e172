// Package transport moves IKE datagrams: UDP sockets on ports 500 and 4500
// (IPv4 and IPv6, the non-ESP marker on the NAT-T port, batch receive) and an
// in-memory network for tests whose delivery the test controls.
package transport

import (
	"errors"
	"net/netip"
)

// Packet is one IKE datagram without the non-ESP marker.
type Packet struct {
	Data   []byte
	Local  netip.AddrPort // our address and port it arrived on / leaves from
	Remote netip.AddrPort
}

// Conn is a bound set of IKE sockets.
type Conn interface {
	// Receive blocks until at least one packet arrived and fills pkts
	// from the front. It returns net.ErrClosed after Close.
	Receive(pkts []Packet) (int, error)
	// Send sends p.Data from p.Local (port selects the socket) to p.Remote.
	Send(p Packet) error
	// LocalAddrs lists the bound addresses.
	LocalAddrs() []netip.AddrPort
	Close() error
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("transport: closed")
