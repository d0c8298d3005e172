package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/veil-ipsec/veil/sdk/plugintest"
)

func TestConformance(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	t.Setenv("VEIL_EXAMPLE_KEY", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	t.Setenv("VEIL_EXAMPLE_PSK", "an example secret of enough bytes")
	plugintest.RunKeystoreConformance(t, &envStore{prefix: "VEIL_"}, plugintest.KeystoreCase{
		Config:     []byte(`{"prefix": "VEIL_EXAMPLE_"}`),
		SecretRef:  "env:VEIL_EXAMPLE_PSK",
		Secret:     []byte("an example secret of enough bytes"),
		SignerRefs: []string{"env:VEIL_EXAMPLE_KEY"},
		MissingRef: "env:VEIL_EXAMPLE_MISSING",
	})
}
