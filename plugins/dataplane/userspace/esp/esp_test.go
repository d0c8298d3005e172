package esp

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"
)

type vector struct {
	name, encryption                  string
	key, seq, iv, spi, plain, cipherb []byte
	esn                               bool
}

func loadVectors(t *testing.T) []vector {
	f, err := os.Open("testdata/vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []vector
	cur := map[string]string{}
	flush := func() {
		if len(cur) == 0 {
			return
		}
		h := func(k string) []byte {
			b, err := hex.DecodeString(cur[k])
			if err != nil {
				t.Fatalf("%s %s: %v", cur["name"], k, err)
			}
			return b
		}
		out = append(out, vector{name: cur["name"], encryption: cur["encryption"], key: h("key"), seq: h("seq"),
			iv: h("iv"), spi: h("spi"), plain: h("plaintext"), cipherb: h("ciphertext"), esn: cur["esn"] == "true"})
		cur = map[string]string{}
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		if line == "" {
			flush()
			continue
		}
		k, v, _ := strings.Cut(line, ":")
		cur[k] = strings.TrimSpace(v)
	}
	flush()
	if len(out) != 3 {
		t.Fatalf("loaded %d vectors", len(out))
	}
	return out
}

// TestKnownAnswerPackets opens the published ESP packets and re-creates them
// byte for byte (with the published IV, since Seal uses the sequence number).
func TestKnownAnswerPackets(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			spi := binary.BigEndian.Uint32(v.spi)
			seq := binary.BigEndian.Uint64(v.seq)
			sa, err := New(spi, v.encryption, v.key, "", nil, v.esn)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, 0, 256)
			want = binary.BigEndian.AppendUint32(want, spi)
			want = binary.BigEndian.AppendUint32(want, uint32(seq))
			want = append(want, v.iv...)
			want = append(want, v.cipherb...)

			// Open.
			buf := make([]byte, 16+len(want))
			copy(buf[16:], want)
			payload, nh, err := sa.Open(buf, 16, len(buf), seq)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			trailerPad := int(v.plain[len(v.plain)-2])
			if !bytes.Equal(payload, v.plain[:len(v.plain)-2-trailerPad]) || nh != v.plain[len(v.plain)-1] {
				t.Fatalf("open: payload/next header mismatch (nh %d)", nh)
			}

			// Seal with the published IV: identical packet.
			buf = make([]byte, 16+len(want))
			start := 16
			copy(buf[start+HeaderLen:], v.iv)
			copy(buf[start+sa.PrefixLen():], v.plain)
			got := sa.sealAEAD(buf, start, len(v.plain), seq)
			if !bytes.Equal(got, want) {
				t.Fatalf("seal:\n got %x\nwant %x", got, want)
			}

			// Our own trailer builder produces the published trailer.
			buf = make([]byte, 16+len(want))
			inner := v.plain[:len(v.plain)-2-trailerPad]
			copy(buf[start+sa.PrefixLen():], inner)
			pkt, err := sa.Seal(buf, start+sa.PrefixLen(), len(inner), nh, seq)
			if err != nil {
				t.Fatal(err)
			}
			if len(pkt) != len(want) {
				t.Fatalf("sealed length %d, want %d", len(pkt), len(want))
			}

			// A wrong high half of the ESN, or a flipped bit, fails.
			for i := range want {
				buf = make([]byte, 16+len(want))
				copy(buf[16:], want)
				buf[16+i] ^= 0x01
				if i < 4 { // the SPI only selects the SA
					continue
				}
				// The receiver takes the low 32 bits from the wire.
				wireSeq := seq&^0xffffffff | uint64(binary.BigEndian.Uint32(buf[20:]))
				if _, _, err := sa.Open(buf, 16, len(buf), wireSeq); err == nil {
					t.Fatalf("bit flip at %d accepted", i)
				}
			}
		})
	}
}

type suite struct {
	name, encr, integ string
	encKeyLen, intKey int
}

var suites = []suite{
	{"aes128gcm", "aes-gcm-16", "", 20, 0},
	{"aes256gcm", "aes-gcm-16", "", 36, 0},
	{"chacha20poly1305", "chacha20-poly1305", "", 36, 0},
	{"aes128cbc-sha256", "aes-cbc", "hmac-sha2-256-128", 16, 32},
	{"aes256cbc-sha512", "aes-cbc", "hmac-sha2-512-256", 32, 64},
}

func newPair(t testing.TB, s suite, esn bool) (*SA, *SA) {
	ek, ik := make([]byte, s.encKeyLen), make([]byte, s.intKey)
	rand.Read(ek)
	rand.Read(ik)
	var integKey []byte
	if s.intKey > 0 {
		integKey = ik
	}
	a, err := New(0x1234, s.encr, ek, s.integ, integKey, esn)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(0x1234, s.encr, ek, s.integ, integKey, esn)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// ipv4Packet / ipv6Packet build minimal inner packets so round trips cover
// both families in transport (next header = upper protocol) and tunnel
// (next header 4 / 41) mode.
func ipv4Packet(n int) []byte {
	p := make([]byte, n)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	p[9] = 17
	rand.Read(p[20:])
	return p
}

func ipv6Packet(n int) []byte {
	p := make([]byte, n)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(n-40))
	p[6] = 6
	rand.Read(p[40:])
	return p
}

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name    string
		payload func(int) []byte
		nh      byte
		strip   int // transport mode carries the upper-layer payload only
	}{
		{"v4-transport", ipv4Packet, 17, 20},
		{"v4-tunnel", ipv4Packet, 4, 0},
		{"v6-transport", ipv6Packet, 6, 40},
		{"v6-tunnel", ipv6Packet, 41, 0},
	}
	for _, s := range suites {
		for _, esn := range []bool{false, true} {
			for _, c := range cases {
				name := s.name + "/" + c.name
				if esn {
					name += "/esn"
				}
				t.Run(name, func(t *testing.T) {
					tx, rx := newPair(t, s, esn)
					for _, size := range []int{41, 64, 200, 1400} {
						inner := c.payload(size)[c.strip:]
						buf := make([]byte, 2048)
						off := 64
						copy(buf[off:], inner)
						seq := uint64(size) | uint64(7)<<32
						pkt, err := tx.Seal(buf, off, len(inner), c.nh, seq)
						if err != nil {
							t.Fatal(err)
						}
						if len(pkt) != tx.SealedLen(len(inner)) || len(pkt) > len(inner)+tx.MaxOverhead() {
							t.Fatalf("len %d", len(pkt))
						}
						if (len(pkt)-HeaderLen-tx.ivLen-tx.icvLen)%tx.align != 0 {
							t.Fatal("ciphertext not aligned")
						}
						if len(inner) >= 16 && bytes.Contains(pkt, inner[len(inner)-16:]) {
							t.Fatal("payload visible in ESP packet")
						}
						spi, low, _ := ParseHeader(pkt)
						if spi != 0x1234 || low != uint32(seq) {
							t.Fatalf("header %x %x", spi, low)
						}
						rbuf := make([]byte, 2048)
						copy(rbuf[32:], pkt)
						got, nh, err := rx.Open(rbuf, 32, 32+len(pkt), seq)
						if err != nil {
							t.Fatalf("open: %v", err)
						}
						if nh != c.nh || !bytes.Equal(got, inner) {
							t.Fatal("round trip mismatch")
						}
						if esn {
							// The high 32 bits are authenticated but not sent.
							copy(rbuf[32:], pkt)
							if _, _, err := rx.Open(rbuf, 32, 32+len(pkt), seq+1<<32); err == nil {
								t.Fatal("wrong ESN high bits accepted")
							}
						}
					}
				})
			}
		}
	}
}

func TestBadInput(t *testing.T) {
	for _, s := range suites {
		tx, rx := newPair(t, s, false)
		buf := make([]byte, 256)
		pkt, err := tx.Seal(buf, 64, 10, 6, 1)
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < len(pkt); n++ {
			rb := make([]byte, 300)
			copy(rb[16:], pkt[:n])
			if _, _, err := rx.Open(rb, 16, 16+n, 1); err == nil {
				t.Fatalf("%s: truncated packet of %d accepted", s.name, n)
			}
		}
		if _, err := tx.Seal(make([]byte, 64), 10, 10, 6, 1); err != ErrNoRoom {
			t.Fatalf("no headroom: %v", err)
		}
	}
	bad := []struct {
		e, i   string
		ek, ik int
	}{
		{"aes-gcm-16", "", 16, 0},
		{"aes-gcm-16", "hmac-sha2-256-128", 20, 32},
		{"chacha20-poly1305", "", 32, 0},
		{"aes-cbc", "hmac-sha2-256-128", 16, 16},
		{"aes-cbc", "", 16, 0},
		{"des", "", 8, 0},
	}
	for _, b := range bad {
		if _, err := New(1, b.e, make([]byte, b.ek), b.i, make([]byte, b.ik), false); err == nil {
			t.Errorf("%+v accepted", b)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	for _, s := range suites {
		for _, size := range []int{64, 1400} {
			b.Run(s.name+"/"+itoa(size), func(b *testing.B) {
				tx, _ := newPair(b, s, true)
				buf := make([]byte, 2048)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				var seq uint64
				for b.Loop() {
					seq++
					if _, err := tx.Seal(buf, 64, size, 4, seq); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, s := range suites {
		for _, size := range []int{64, 1400} {
			b.Run(s.name+"/"+itoa(size), func(b *testing.B) {
				tx, rx := newPair(b, s, true)
				buf := make([]byte, 2048)
				pkt, _ := tx.Seal(buf, 64, size, 4, 9)
				orig := append([]byte(nil), pkt...)
				work := make([]byte, 2048)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					copy(work[16:], orig)
					if _, _, err := rx.Open(work, 16, 16+len(orig), 9); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
