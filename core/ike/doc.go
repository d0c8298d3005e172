// Package ike is the IKEv2 wire format (RFC 7296 and extensions): the header,
// one struct per payload with marshal and parse, one parse switch, and SK/SKF
// protection behind the SKCipher interface (implemented by core/transform).
//
// Parsing is strict: every length is checked, malformed input returns an
// error and never panics. A Message keeps the exact bytes it was parsed from
// (Raw) and an Identification its exact body, because AUTH signs octets as
// they were sent, never a re-marshalled copy.
package ike
