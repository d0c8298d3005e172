package ike

import "testing"

func mustMarshal(b *testing.B, m *Message) []byte {
	raw, err := m.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

func sealedAuth(b *testing.B) []byte {
	raw, err := SealMessage(SampleAuthHeader(), SampleAuthPayloads(), testCiphers()["aes-gcm-16"])
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkWalkSAInit is the allocation-free first look at a datagram:
// header plus payload walk, as the receive path does before any state.
func BenchmarkWalkSAInit(b *testing.B) {
	raw := mustMarshal(b, SampleSAInitRequest())
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	n := 0
	count := func(t, next PayloadType, critical bool, body []byte) error { n++; return nil }
	for b.Loop() {
		h, err := ParseHeader(raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := WalkPayloads(h.NextPayload, raw[HeaderLen:], count); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSAInit(b *testing.B) {
	raw := mustMarshal(b, SampleSAInitRequest())
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseMessage(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalSAInit(b *testing.B) {
	m := SampleSAInitRequest()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseAuth parses an SK-protected IKE_AUTH's outer message.
func BenchmarkParseAuth(b *testing.B) {
	raw := sealedAuth(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseMessage(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenAuth decrypts and parses the inner payloads (test AES-GCM).
func BenchmarkOpenAuth(b *testing.B) {
	c := testCiphers()["aes-gcm-16"]
	m, err := ParseMessage(sealedAuth(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := OpenMessage(m, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealAuth marshals and encrypts an IKE_AUTH (test AES-GCM).
func BenchmarkSealAuth(b *testing.B) {
	c := testCiphers()["aes-gcm-16"]
	h, inner := SampleAuthHeader(), SampleAuthPayloads()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SealMessage(h, inner, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshalAuthOuter marshals the outer IKE_AUTH (header + SK).
func BenchmarkMarshalAuthOuter(b *testing.B) {
	m, err := ParseMessage(sealedAuth(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}
