// Package ike is the IKEv2 wire format (RFC 7296 with RFC 7383 fragments,
// RFC 9242 IKE_INTERMEDIATE and RFC 9370 multiple key exchanges): the
// header, one struct per payload with marshal and parse (one parse switch
// in payload.go), and SK/SKF protection behind the SKCipher interface that
// core/transform implements.
//
// Parsing is strict: every length is checked, malformed input returns an
// error and never panics. A Message keeps the exact bytes it was parsed from
// (Raw) and an Identification its exact body, because AUTH signs octets as
// they were sent, never a re-marshalled copy. ParseHeader and WalkPayloads
// look at a datagram without allocating, for the receive path's first
// checks; ParseMessage builds the structs and shares no memory with its
// input.
package ike
