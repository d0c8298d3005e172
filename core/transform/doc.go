// Package transform holds IKEv2's algorithms as data tables (encryption,
// PRF, integrity, key exchange), proposals in strongSwan's string syntax,
// proposal selection, the key schedule (RFC 7296 §2.13-2.18, RFC 9370) and
// the SK payload ciphers. A new algorithm is a table row plus a test vector
// in testdata/.
//
// Against contracts.md: the PRF is Suite.ComputePRF (a method named PRF
// would clash with the field); RekeyIKE and ChildKeymat are functions that
// take both suites, because the rekey's SKEYSEED uses the old IKE SA's PRF
// and child KEYMAT the IKE SA's PRF with the child's key lengths. RFC 9370
// additional shared secrets are their trailing variadic arguments.
//
// MODP groups use math/big, which is not constant-time; prefer x25519 or
// the ECP groups (the defaults list MODP-3072 last).
package transform
