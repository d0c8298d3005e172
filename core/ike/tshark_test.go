package ike_test

// Cross-check of the wire format against an independent implementation:
// Wireshark's IKEv2 dissector (tshark). Generated messages are written to a
// pcap (Ethernet/IPv4/UDP 500) and dissected; the test asserts tshark sees
// no malformed packet or expert error and reads back the values we encoded.
// The IKE_AUTH exchanges are encrypted with core/transform's SK ciphers
// (AES-CBC-256 + HMAC-SHA2-256-128 and AES-GCM-16-256) and decrypted by
// tshark from its ikev2_decryption_table.

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/transform"
)

type datagram struct {
	src, dst netip.AddrPort
	payload  []byte
}

// writePcap writes a classic pcap (LINKTYPE_ETHERNET) with one IPv4/UDP
// packet per datagram.
func writePcap(path string, ds []datagram) error {
	var b bytes.Buffer
	le := binary.LittleEndian
	hdr := make([]byte, 24)
	le.PutUint32(hdr[0:], 0xa1b2c3d4)
	le.PutUint16(hdr[4:], 2)
	le.PutUint16(hdr[6:], 4)
	le.PutUint32(hdr[16:], 65535)
	le.PutUint32(hdr[20:], 1) // Ethernet
	b.Write(hdr)
	for i, d := range ds {
		pkt := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00} // dst, src MAC, IPv4
		ip := make([]byte, 20)
		ip[0], ip[8], ip[9] = 0x45, 64, 17
		binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(d.payload)))
		binary.BigEndian.PutUint16(ip[4:], uint16(i+1))
		src, dst := d.src.Addr().As4(), d.dst.Addr().As4()
		copy(ip[12:], src[:])
		copy(ip[16:], dst[:])
		var sum uint32
		for j := 0; j < 20; j += 2 {
			sum += uint32(binary.BigEndian.Uint16(ip[j:]))
		}
		for sum > 0xffff {
			sum = sum>>16 + sum&0xffff
		}
		binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
		udp := make([]byte, 8) // checksum 0: none (allowed for IPv4)
		binary.BigEndian.PutUint16(udp[0:], d.src.Port())
		binary.BigEndian.PutUint16(udp[2:], d.dst.Port())
		binary.BigEndian.PutUint16(udp[4:], uint16(8+len(d.payload)))
		pkt = append(append(append(pkt, ip...), udp...), d.payload...)
		rec := make([]byte, 16)
		le.PutUint32(rec[0:], uint32(1764300000+i))
		le.PutUint32(rec[8:], uint32(len(pkt)))
		le.PutUint32(rec[12:], uint32(len(pkt)))
		b.Write(rec)
		b.Write(pkt)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// pdml is the part of tshark's PDML output the test reads.
type pdml struct {
	Packets []struct {
		Protos []pdmlField `xml:"proto"`
	} `xml:"packet"`
}

type pdmlField struct {
	Name     string      `xml:"name,attr"`
	Show     string      `xml:"show,attr"`
	ShowName string      `xml:"showname,attr"`
	Value    string      `xml:"value,attr"`
	Fields   []pdmlField `xml:"field"`
	Protos   []pdmlField `xml:"proto"`
}

// flatten lists every field of a packet in document order.
func flatten(fs []pdmlField, out *[]pdmlField) {
	for _, f := range fs {
		*out = append(*out, f)
		flatten(f.Fields, out)
		flatten(f.Protos, out)
	}
}

type packetFields []pdmlField

// all returns the shown values of every field called name.
func (p packetFields) all(name string) []string {
	var out []string
	for _, f := range p {
		if f.Name == name {
			out = append(out, f.Show)
		}
	}
	return out
}

func (p packetFields) first(name string) string {
	if v := p.all(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// keys of one IKE SA, as tshark's ikev2_decryption_table wants them.
type saKeys struct {
	spii, spir             uint64
	ei, er, ai, ar         []byte
	tsharkEncr, tsharkAuth string
}

func (k saKeys) uat() string {
	// UAT records: byte fields as bare hex, enumerations as quoted names.
	q := func(s string) string { return `"` + s + `"` }
	return strings.Join([]string{
		fmt.Sprintf("%016x", k.spii), fmt.Sprintf("%016x", k.spir),
		hex.EncodeToString(k.ei), hex.EncodeToString(k.er), q(k.tsharkEncr),
		hex.EncodeToString(k.ai), hex.EncodeToString(k.ar), q(k.tsharkAuth),
	}, ",")
}

func keyBytes(seed byte, n int) []byte { return bytes.Repeat([]byte{seed}, n) }

func TestTsharkDissectsOurMessages(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed")
	}
	ini, res := ike.SampleInitiatorAddr, ike.SampleResponderAddr
	var ds []datagram
	marshal := func(m *ike.Message) []byte {
		raw, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	ds = append(ds,
		datagram{ini, res, marshal(ike.SampleSAInitRequest())},
		datagram{res, ini, marshal(ike.SampleSAInitResponse())},
	)

	// IKE_AUTH request and response, AES-CBC-256 + HMAC-SHA2-256-128.
	cbc := saKeys{spii: ike.SampleSPIi, spir: ike.SampleSPIr,
		ei: keyBytes(0xe1, 32), er: keyBytes(0xe2, 32), ai: keyBytes(0xa1, 32), ar: keyBytes(0xa2, 32),
		tsharkEncr: "AES-CBC-256 [RFC3602]", tsharkAuth: "HMAC_SHA2_256_128 [RFC4868]"}
	cbcSuite := transform.Suite{Protocol: transform.ProtoIKE, Encr: transform.EncrAESCBC, EncrKeyBits: 256, Integ: transform.IntegHMACSHA256128}
	seal := func(s transform.Suite, ek, ak []byte, h ike.Header, inner []ike.Payload) []byte {
		c, err := s.NewSKCipher(ek, ak)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := ike.SealMessage(h, inner, c)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	authReq := ike.SampleAuthPayloads()
	ds = append(ds, datagram{ini, res, seal(cbcSuite, cbc.ei, cbc.ai, ike.SampleAuthHeader(), authReq)})
	respHeader := ike.SampleAuthHeader()
	respHeader.Flags = ike.FlagResponse
	authResp := []ike.Payload{
		&ike.Identification{IDType: ike.IDIPv6, Data: netip.MustParseAddr("2001:db8::2").AsSlice()},
		&ike.Authentication{Method: ike.AuthSharedKey, Data: keyBytes(0xb7, 32)},
		&ike.Configuration{CfgType: ike.CfgReply, Attributes: []ike.CPAttribute{{Type: ike.CfgInternalIP4Address, Value: []byte{10, 3, 0, 7}}}},
		authReq[4], authReq[5], authReq[6],
	}
	ds = append(ds, datagram{res, ini, seal(cbcSuite, cbc.er, cbc.ar, respHeader, authResp)})
	ds = append(ds, datagram{res, ini, marshal(ike.SampleInformational())})

	// A second IKE SA whose IKE_AUTH uses AES-GCM-16-256.
	gcm := saKeys{spii: 0x1111111111111111, spir: 0x2222222222222222,
		ei: keyBytes(0x71, 36), er: keyBytes(0x72, 36),
		tsharkEncr: "AES-GCM-256 with 16 octet ICV [RFC5282]", tsharkAuth: "NONE [RFC4306]"}
	gcmSuite := transform.Suite{Protocol: transform.ProtoIKE, Encr: transform.EncrAESGCM16, EncrKeyBits: 256}
	gcmHeader := ike.Header{SPIi: gcm.spii, SPIr: gcm.spir, Exchange: ike.IKE_AUTH, Flags: ike.FlagInitiator, MessageID: 1}
	ds = append(ds, datagram{ini, res, seal(gcmSuite, gcm.ei, nil, gcmHeader, authReq)})

	dir := t.TempDir()
	pcap := filepath.Join(dir, "ike.pcap")
	if err := writePcap(pcap, ds); err != nil {
		t.Fatal(err)
	}
	// An empty profile directory keeps the user's preferences out.
	cmd := exec.Command(tshark, "-n", "-r", pcap, "-T", "pdml",
		"-o", "uat:ikev2_decryption_table:"+cbc.uat(),
		"-o", "uat:ikev2_decryption_table:"+gcm.uat())
	cmd.Env = append(os.Environ(), "WIRESHARK_CONFIG_DIR="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	if os.Getenv("VEIL_TSHARK_DUMP") != "" {
		os.WriteFile("/tmp/veil-tshark.pdml", out, 0o644)
	}
	var doc pdml
	if err := xml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("PDML: %v", err)
	}
	if len(doc.Packets) != len(ds) {
		t.Fatalf("tshark saw %d packets, wrote %d", len(doc.Packets), len(ds))
	}
	pkts := make([]packetFields, len(doc.Packets))
	for i, p := range doc.Packets {
		var fs []pdmlField
		flatten(p.Protos, &fs)
		pkts[i] = fs
		for _, f := range fs {
			if strings.HasPrefix(f.Name, "_ws.malformed") || f.Name == "_ws.expert" {
				t.Errorf("packet %d: tshark reports %s %q", i+1, f.Name, f.Show)
			}
		}
	}

	// What each packet carries, outer payloads then (for SK) inner ones.
	type want struct {
		h     ike.Header
		outer []ike.Payload
		inner []ike.Payload
	}
	wants := []want{
		{ike.SampleSAInitRequest().Header, ike.SampleSAInitRequest().Payloads, nil},
		{ike.SampleSAInitResponse().Header, ike.SampleSAInitResponse().Payloads, nil},
		{ike.SampleAuthHeader(), nil, authReq},
		{respHeader, nil, authResp},
		{ike.SampleInformational().Header, ike.SampleInformational().Payloads, nil},
		{gcmHeader, nil, authReq},
	}
	for i, w := range wants {
		p := pkts[i]
		checkField(t, i, p, "isakmp.ispi", colonHex(binary.BigEndian.AppendUint64(nil, w.h.SPIi)))
		checkField(t, i, p, "isakmp.rspi", colonHex(binary.BigEndian.AppendUint64(nil, w.h.SPIr)))
		checkField(t, i, p, "isakmp.exchangetype", strconv.Itoa(int(w.h.Exchange)))
		checkField(t, i, p, "isakmp.messageid", fmt.Sprintf("0x%08x", w.h.MessageID))
		checkField(t, i, p, "isakmp.flags", fmt.Sprintf("0x%02x", uint8(w.h.Flags)))
		checkField(t, i, p, "isakmp.length", strconv.Itoa(len(ds[i].payload)))
		all := w.outer
		if w.inner != nil {
			all = append([]ike.Payload{&ike.Encrypted{}}, w.inner...)
			if p.first("isakmp.enc.decrypted") == "" && len(p.all("isakmp.enc.decrypted")) == 0 {
				t.Errorf("packet %d: tshark did not decrypt the SK payload", i+1)
			}
		}
		// Our names for notify and exchange types agree with Wireshark's.
		for _, f := range p {
			var ours string
			switch f.Name {
			case "isakmp.notify.msgtype":
				n, _ := strconv.Atoi(f.Show)
				ours = ike.NotifyType(n).String()
			case "isakmp.exchangetype":
				n, _ := strconv.Atoi(f.Show)
				ours = ike.ExchangeType(n).String()
			default:
				continue
			}
			// Wireshark 4.0 predates some registrations (16438 on).
			if strings.Contains(f.ShowName, "RESERVED TO IANA") {
				continue
			}
			if !strings.Contains(f.ShowName, ": "+ours+" (") {
				t.Errorf("packet %d: tshark shows %q, we call it %s", i+1, f.ShowName, ours)
			}
		}
		exp := expectedFields(all)
		for name, values := range exp {
			got := p.all(name)
			if name == "isakmp.typepayload" {
				// Proposal (2) and transform (3) substructures share the field.
				got = slices.DeleteFunc(got, func(v string) bool { return v == "2" || v == "3" })
			}
			if !slices.Equal(got, values) {
				t.Errorf("packet %d: %s = %q, want %q", i+1, name, got, values)
			}
		}
	}
}

func checkField(t *testing.T, i int, p packetFields, name, want string) {
	t.Helper()
	if got := p.first(name); got != want {
		t.Errorf("packet %d: %s = %q, want %q", i+1, name, got, want)
	}
}

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ":")
}

// expectedFields lists, per tshark field name, the values the payloads
// must show in order.
func expectedFields(ps []ike.Payload) map[string][]string {
	m := map[string][]string{}
	add := func(name string, v any) {
		var s string
		switch v := v.(type) {
		case []byte:
			s = colonHex(v)
		case string:
			s = v
		default:
			s = fmt.Sprint(v)
		}
		m[name] = append(m[name], s)
	}
	for _, p := range ps {
		add("isakmp.typepayload", int(p.Type()))
		switch p := p.(type) {
		case *ike.SA:
			for _, prop := range p.Proposals {
				add("isakmp.prop.number", prop.Number)
				add("isakmp.prop.protoid", uint8(prop.Protocol))
				add("isakmp.prop.transforms", len(prop.Transforms))
				for _, tf := range prop.Transforms {
					add("isakmp.tf.type", uint8(tf.Type))
					if tf.KeyLength != 0 {
						add("isakmp.ike2.attr.key_length", tf.KeyLength)
					}
				}
			}
		case *ike.KeyExchange:
			add("isakmp.key_exchange.dh_group", p.Group)
			add("isakmp.key_exchange.data", p.Data)
		case *ike.Nonce:
			add("isakmp.nonce", p.Data)
		case *ike.Notify:
			add("isakmp.notify.msgtype", uint16(p.NotifyType))
			add("isakmp.notify.data", p.Data)
		case *ike.Identification:
			add("isakmp.id.type", uint8(p.IDType))
			switch p.IDType {
			case ike.IDFQDN:
				add("isakmp.id.data.fqdn", string(p.Data))
			case ike.IDIPv4, ike.IDIPv6:
				a, _ := netip.AddrFromSlice(p.Data)
				add("isakmp.id.data."+map[bool]string{true: "ipv4_addr", false: "ipv6_addr"}[a.Is4()], a.String())
			}
		case *ike.Authentication:
			add("isakmp.auth.method", uint8(p.Method))
			add("isakmp.auth.data", p.Data)
		case *ike.Certificate:
			add("isakmp.cert.encoding", uint8(p.Encoding))
		case *ike.CertificateRequest:
			add("isakmp.certreq.type", uint8(p.Encoding))
		case *ike.Configuration:
			add("isakmp.cfg.type", uint8(p.CfgType))
			for _, a := range p.Attributes {
				add("isakmp.cfg.attr.type", a.Type)
			}
		case *ike.Delete:
			add("isakmp.delete.protoid", uint8(p.Protocol))
			for _, spi := range p.SPIs {
				add("isakmp.delete.spi", spi)
			}
		case *ike.VendorID:
			add("isakmp.vid_bytes", p.Data)
		case *ike.EAP:
			add("eap.code", p.Code)
			add("eap.id", p.Identifier)
		case *ike.TrafficSelectors:
			add("isakmp.ts.number", len(p.Selectors))
			for _, ts := range p.Selectors {
				add("isakmp.ts.type", ts.Type)
				add("isakmp.ts.protoid", ts.Protocol)
				add("isakmp.ts.start_port", ts.StartPort)
				add("isakmp.ts.end_port", ts.EndPort)
				family := map[bool]string{true: "ipv4", false: "ipv6"}[ts.Start.Is4()]
				add("isakmp.ts.start_"+family, ts.Start.String())
				add("isakmp.ts.end_"+family, ts.End.String())
			}
		}
	}
	return m
}
