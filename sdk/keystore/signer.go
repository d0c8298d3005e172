package keystore

import (
	"crypto"
	"crypto/rsa"
)

// GoSignerOpts turns SignOptions into what crypto.Signer.Sign expects
// (*rsa.PSSOptions for PSS), for stores that hold Go keys.
func GoSignerOpts(o SignOptions) crypto.SignerOpts {
	if o.PSS {
		return &rsa.PSSOptions{Hash: o.Hash, SaltLength: o.SaltLength}
	}
	return o.Hash
}

// OptionsFrom is the reverse of GoSignerOpts: what a host puts on the wire
// for the opts a crypto.Signer caller passed.
func OptionsFrom(opts crypto.SignerOpts) SignOptions {
	if pss, ok := opts.(*rsa.PSSOptions); ok {
		return SignOptions{Hash: pss.Hash, PSS: true, SaltLength: pss.SaltLength}
	}
	if opts == nil {
		return SignOptions{}
	}
	return SignOptions{Hash: opts.HashFunc()}
}
