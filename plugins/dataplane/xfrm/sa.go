package xfrm

import (
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/veil-ipsec/veil/core/provider"
)

// espAlgorithm maps provider.ChildSA algorithm names to the kernel's crypto
// API names. keyLens are the accepted key lengths in bytes (AEAD keys include
// the 4-byte salt).
type espAlgorithm struct {
	kernel  string
	aead    bool
	icvBits uint32 // AEAD ICV or integrity truncation length
	keyLens []int
}

var encryptionAlgorithms = map[string]espAlgorithm{
	"aes-gcm-16":        {kernel: "rfc4106(gcm(aes))", aead: true, icvBits: 128, keyLens: []int{20, 28, 36}},
	"chacha20-poly1305": {kernel: "rfc7539esp(chacha20,poly1305)", aead: true, icvBits: 128, keyLens: []int{36}},
	"aes-cbc":           {kernel: "cbc(aes)", keyLens: []int{16, 24, 32}},
}

var integrityAlgorithms = map[string]espAlgorithm{
	"hmac-sha2-256-128": {kernel: "hmac(sha256)", icvBits: 128, keyLens: []int{32}},
	"hmac-sha2-384-192": {kernel: "hmac(sha384)", icvBits: 192, keyLens: []int{48}},
	"hmac-sha2-512-256": {kernel: "hmac(sha512)", icvBits: 256, keyLens: []int{64}},
}

func keyLenOK(a espAlgorithm, n int) bool {
	for _, l := range a.keyLens {
		if l == n {
			return true
		}
	}
	return false
}

// DefaultReplayWindow is used when a ChildSA leaves ReplayWindow at 0.
const DefaultReplayWindow = 1024

// maxReplayWindow is the kernel's limit (XFRMA_REPLAY_ESN_MAX bytes of bitmap).
const maxReplayWindow = 4096 * 8

const (
	udpEncapESPInUDP = 2 // UDP_ENCAP_ESPINUDP (RFC 3948)

	offloadIPv6    = 1 // XFRM_OFFLOAD_IPV6
	offloadInbound = 2 // XFRM_OFFLOAD_INBOUND
	offloadPacket  = 4 // XFRM_OFFLOAD_PACKET
)

// offloadRequest is XFRMA_OFFLOAD_DEV's content for one SA; nil means none.
type offloadRequest struct {
	ifindex int
	flags   uint8
}

// newSARequest builds the XFRM_MSG_NEWSA request for sa as the kernel will
// see it (kernel reqid already mapped into veil's band). It never logs or
// keeps the keys; the request's bytes are zeroed by the caller after use.
func newSARequest(sa *provider.ChildSA, reqid uint32, off *offloadRequest) (*nl.NetlinkRequest, error) {
	if sa.SPI == 0 {
		return nil, fmt.Errorf("xfrm: SA with SPI 0")
	}
	if !sa.Src.IsValid() || !sa.Dst.IsValid() || sa.Src.Is4() != sa.Dst.Is4() {
		return nil, fmt.Errorf("xfrm: SA 0x%08x: need src and dst of one family, got %v -> %v", sa.SPI, sa.Src, sa.Dst)
	}
	enc, ok := encryptionAlgorithms[sa.Encryption]
	if !ok {
		return nil, fmt.Errorf("xfrm: unsupported encryption %q", sa.Encryption)
	}
	if !keyLenOK(enc, len(sa.EncKey)) {
		return nil, fmt.Errorf("xfrm: %s key is %d bytes, want one of %v", sa.Encryption, len(sa.EncKey), enc.keyLens)
	}
	var integ espAlgorithm
	switch {
	case enc.aead && sa.Integrity != "":
		return nil, fmt.Errorf("xfrm: %s is AEAD, integrity %q not allowed", sa.Encryption, sa.Integrity)
	case !enc.aead:
		integ, ok = integrityAlgorithms[sa.Integrity]
		if !ok {
			return nil, fmt.Errorf("xfrm: unsupported integrity %q", sa.Integrity)
		}
		if !keyLenOK(integ, len(sa.IntegKey)) {
			return nil, fmt.Errorf("xfrm: %s key is %d bytes, want %v", sa.Integrity, len(sa.IntegKey), integ.keyLens)
		}
	}
	mode, err := kernelMode(sa.Mode)
	if err != nil {
		return nil, err
	}
	window := sa.ReplayWindow
	if window == 0 {
		window = DefaultReplayWindow
	}
	if window > maxReplayWindow {
		return nil, fmt.Errorf("xfrm: replay window %d exceeds the kernel's %d", window, maxReplayWindow)
	}

	family := familyOf(sa.Dst)
	msg := &nl.XfrmUsersaInfo{}
	msg.Sel.Family = uint16(family)
	msg.Id.Daddr.FromIP(ipOf(sa.Dst))
	msg.Id.Spi = nl.Swap32(sa.SPI)
	msg.Id.Proto = unix.IPPROTO_ESP
	msg.Saddr.FromIP(ipOf(sa.Src))
	msg.Family = uint16(family)
	msg.Mode = mode
	msg.Reqid = reqid
	// The replay window travels in XFRMA_REPLAY_ESN_VAL (legacy field is 8
	// bits); the kernel insists the legacy field is then 0.
	msg.ReplayWindow = 0
	if sa.ESN {
		msg.Flags |= 128 // XFRM_STATE_ESN
	}
	msg.Lft = lifetimeConfig(sa.Soft, sa.Hard)

	req := nl.NewNetlinkRequest(nl.XFRM_MSG_NEWSA, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	req.AddData(msg)
	if enc.aead {
		req.AddData(nl.NewRtAttr(nl.XFRMA_ALG_AEAD, algoAttr(enc.kernel, sa.EncKey, enc.icvBits, true)))
	} else {
		req.AddData(nl.NewRtAttr(nl.XFRMA_ALG_CRYPT, algoAttr(enc.kernel, sa.EncKey, 0, false)))
		req.AddData(nl.NewRtAttr(nl.XFRMA_ALG_AUTH_TRUNC, algoAttr(integ.kernel, sa.IntegKey, integ.icvBits, true)))
	}
	req.AddData(nl.NewRtAttr(nl.XFRMA_REPLAY_ESN_VAL, replayESN(window)))
	if sa.Encap != nil {
		b := make([]byte, nl.SizeofXfrmEncapTmpl)
		binary.NativeEndian.PutUint16(b[0:], udpEncapESPInUDP)
		binary.BigEndian.PutUint16(b[2:], sa.Encap.SrcPort)
		binary.BigEndian.PutUint16(b[4:], sa.Encap.DstPort)
		req.AddData(nl.NewRtAttr(nl.XFRMA_ENCAP, b))
	}
	if sa.Mark != 0 {
		req.AddData(nl.NewRtAttr(nl.XFRMA_MARK, markAttr(sa.Mark)))
	}
	if sa.IfID != 0 {
		req.AddData(nl.NewRtAttr(nl.XFRMA_IF_ID, nl.Uint32Attr(sa.IfID)))
	}
	if off != nil {
		b := make([]byte, 8) // struct xfrm_user_offload {int ifindex; __u8 flags;}
		binary.NativeEndian.PutUint32(b[0:], uint32(off.ifindex))
		b[4] = off.flags
		req.AddData(nl.NewRtAttr(nl.XFRMA_OFFLOAD_DEV, b))
	}
	return req, nil
}

// algoAttr is struct xfrm_algo (withLen=false) or xfrm_algo_auth /
// xfrm_algo_aead (withLen=true: the u32 after key_len is the ICV or
// truncation length in bits).
func algoAttr(name string, key []byte, icvBits uint32, withLen bool) []byte {
	hdr := 64 + 4
	if withLen {
		hdr += 4
	}
	b := make([]byte, hdr+len(key))
	copy(b[:64], name)
	binary.NativeEndian.PutUint32(b[64:], uint32(len(key)*8))
	if withLen {
		binary.NativeEndian.PutUint32(b[68:], icvBits)
	}
	copy(b[hdr:], key)
	return b
}

// replayESN is struct xfrm_replay_state_esn with an empty bitmap.
func replayESN(window uint32) []byte {
	words := (window + 31) / 32
	b := make([]byte, 24+4*int(words))
	binary.NativeEndian.PutUint32(b[0:], words)
	binary.NativeEndian.PutUint32(b[20:], window)
	return b
}

func markAttr(mark uint32) []byte {
	b := make([]byte, 8)
	binary.NativeEndian.PutUint32(b[0:], mark)
	binary.NativeEndian.PutUint32(b[4:], math.MaxUint32)
	return b
}

func lifetimeConfig(soft, hard provider.Lifetime) nl.XfrmLifetimeCfg {
	limit := func(v uint64) uint64 {
		if v == 0 {
			return nl.XFRM_INF
		}
		return v
	}
	return nl.XfrmLifetimeCfg{
		SoftByteLimit:         limit(soft.Bytes),
		HardByteLimit:         limit(hard.Bytes),
		SoftPacketLimit:       limit(soft.Packets),
		HardPacketLimit:       limit(hard.Packets),
		SoftAddExpiresSeconds: uint64(soft.Time.Seconds()),
		HardAddExpiresSeconds: uint64(hard.Time.Seconds()),
	}
}

func kernelMode(m provider.Mode) (uint8, error) {
	switch m {
	case provider.Transport:
		return 0, nil // XFRM_MODE_TRANSPORT
	case provider.Tunnel:
		return 1, nil // XFRM_MODE_TUNNEL
	}
	return 0, fmt.Errorf("xfrm: unknown mode %d", m)
}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return nl.FAMILY_V4
	}
	return nl.FAMILY_V6
}

// ipOf converts to net.IP; IPv4 stays 4 bytes so netlink picks AF_INET.
func ipOf(a netip.Addr) net.IP {
	if a.Is4() {
		b := a.As4()
		return net.IP(b[:])
	}
	b := a.As16()
	return net.IP(b[:])
}

func addrOf(ip net.IP) netip.Addr {
	if v4 := ip.To4(); v4 != nil {
		return netip.AddrFrom4([4]byte(v4))
	}
	a, _ := netip.AddrFromSlice(ip)
	return a
}
