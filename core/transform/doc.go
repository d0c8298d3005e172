// Package transform holds IKEv2's algorithms as data tables (encryption,
// PRF, integrity, key exchange), proposals in strongSwan's string syntax,
// proposal selection, the key schedule (RFC 7296 §2.13-2.18, RFC 9370) and
// the SK payload ciphers. A new algorithm is a table row plus a test vector.
package transform
