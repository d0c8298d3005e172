package ike

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzParseMessage seeds from the sample messages")

// FuzzParseMessage: no input panics, and whatever parses re-marshals to
// bytes that parse to the same structure.
func FuzzParseMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		again := &Message{Header: m.Header, Payloads: m.Payloads}
		raw, err := again.Marshal()
		if err != nil {
			t.Fatalf("parsed message does not marshal: %v", err)
		}
		m2, err := ParseMessage(raw)
		if err != nil {
			t.Fatalf("re-marshalled message does not parse: %v\n%x", err, raw)
		}
		if !reflect.DeepEqual(m2.Header, again.Header) || !reflect.DeepEqual(m2.Payloads, m.Payloads) {
			t.Fatalf("structure changed:\n%#v\n%#v", m.Payloads, m2.Payloads)
		}
	})
}

// FuzzReassembler feeds arbitrary fragments (sealed with a known key, so
// they pass authentication) to a Reassembler: it never panics, and it
// delivers a message only once every fragment 1..Total of it was added.
func FuzzReassembler(f *testing.F) {
	c := testCiphers()["aes-gcm-16"]
	f.Add(uint32(1), uint16(1), uint16(1), []byte{0, 0, 0, 20}, uint32(1), uint16(1), uint16(2), []byte{})
	f.Add(uint32(3), uint16(2), uint16(2), []byte{1}, uint32(3), uint16(1), uint16(2), []byte{byte(PayloadNonce)})
	f.Fuzz(func(t *testing.T, id1 uint32, n1, t1 uint16, d1 []byte, id2 uint32, n2, t2 uint16, d2 []byte) {
		var ra Reassembler
		type key struct {
			id    uint32
			total uint16
		}
		added := map[key]map[uint16]bool{}
		for _, fr := range []struct {
			id   uint32
			n, t uint16
			d    []byte
		}{{id1, n1, t1, d1}, {id2, n2, t2, d2}, {id1, n1, t1, d1}} {
			if fr.n == 0 || fr.t == 0 || fr.n > fr.t {
				continue
			}
			h := Header{SPIi: 1, SPIr: 2, Exchange: IKE_AUTH, MessageID: fr.id, NextPayload: PayloadSKF}
			next := PayloadNone
			if fr.n == 1 && len(fr.d) > 0 {
				next = PayloadType(fr.d[0])
			}
			sealed := c.SealedLen(len(fr.d))
			h.Length = uint32(HeaderLen + 8 + sealed)
			raw := appendHeader(nil, &h)
			raw = append(raw, byte(next), 0, byte((8+sealed)>>8), byte(8+sealed), byte(fr.n>>8), byte(fr.n), byte(fr.t>>8), byte(fr.t))
			raw, _ = c.Seal(raw, raw, fr.d)
			m, err := ParseMessage(raw)
			if err != nil {
				t.Fatalf("sealed fragment does not parse: %v", err)
			}
			k := key{fr.id, fr.t}
			if added[k] == nil {
				added[k] = map[uint16]bool{}
			}
			added[k][fr.n] = true
			_, done, _ := ra.Add(m, c)
			if done && len(added[k]) != int(fr.t) {
				t.Fatalf("delivered message %d after %d of %d fragments", fr.id, len(added[k]), fr.t)
			}
		}
	})
}

// TestFuzzCorpus checks the committed seeds: each parses, and the
// deterministic ones are exactly the current sample messages. With
// -update-corpus it rewrites them instead.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParseMessage")
	seeds := map[string][]byte{}
	for name, m := range map[string]*Message{
		"ike_sa_init_request":  SampleSAInitRequest(),
		"ike_sa_init_response": SampleSAInitResponse(),
		"informational":        SampleInformational(),
	} {
		raw, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		seeds[name] = raw
	}
	// An unknown non-critical payload in the chain.
	u := SampleSAInitRequest()
	u.Payloads = append(u.Payloads[:1], append([]Payload{&UnknownPayload{PayloadType: 200, Body: []byte("x")}}, u.Payloads[1:]...)...)
	seeds["unknown_payload"], _ = u.Marshal()

	// The real strongSwan messages, without the non-ESP marker.
	ss, err := ReadStrongSwanExchange()
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range ss.Datagrams {
		b := d.Payload
		if d.Dst.Port() == 4500 {
			b, _ = StripNonESPMarker(b)
		}
		seeds[fmt.Sprintf("strongswan_%d", i+1)] = b
	}

	if *updateCorpus {
		c := testCiphers()["aes-gcm-16"]
		auth, err := SealMessage(SampleAuthHeader(), SampleAuthPayloads(), c)
		if err != nil {
			t.Fatal(err)
		}
		frags, err := SealFragments(SampleAuthHeader(), SampleAuthPayloads(), c, 200)
		if err != nil {
			t.Fatal(err)
		}
		seeds["ike_auth_request_sk"], seeds["ike_auth_request_skf_1"], seeds["ike_auth_request_skf_2"] = auth, frags[0], frags[1]
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seeds {
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range []string{"ike_sa_init_request", "ike_sa_init_response", "informational",
		"unknown_payload", "ike_auth_request_sk", "ike_auth_request_skf_1", "ike_auth_request_skf_2",
		"strongswan_1", "strongswan_2", "strongswan_3", "strongswan_4"} {
		b := readSeed(t, filepath.Join(dir, name))
		if _, err := ParseMessage(b); err != nil {
			t.Errorf("seed %s does not parse: %v", name, err)
		}
		if want, ok := seeds[name]; ok && !bytes.Equal(b, want) {
			t.Errorf("seed %s differs from the sample message (run with -update-corpus)", name)
		}
	}
}

func readSeed(t *testing.T, path string) []byte {
	t.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(content), "\n", 3)
	if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
		t.Fatalf("%s: not a fuzz seed", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}
