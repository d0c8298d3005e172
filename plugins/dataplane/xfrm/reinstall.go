package xfrm

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/veil-ipsec/veil/core/provider"
)

// Installs are idempotent (sdk/dataplane): the host re-installs every SA
// and policy after a restart. XFRM_MSG_NEWSA and NEWPOLICY are sent with
// NLM_F_EXCL, so a second install gets EEXIST; this file decides what to do
// then. Only veil's own SAs and policies (reqid in its band) are touched:
// another daemon's keep the error, as before.

// saReinstall is what InstallSA does when the kernel already holds an SA
// with the same destination, SPI and protocol.
type saReinstall int

const (
	// reinstallRefuse: not veil's SA (or unreadable): keep the EEXIST.
	reinstallRefuse saReinstall = iota
	// reinstallUpdate: XFRM_MSG_UPDSA. It keeps the SA's sequence numbers,
	// replay window state and counters (a live SA keeps working) and takes
	// the new lifetimes, encapsulation ports and if_id; a larval SA is
	// completed with all the new content.
	reinstallUpdate
	// reinstallReplace: the SA differs in what UPDSA leaves alone (keys,
	// algorithms, reqid, mode, source, replay window, ESN, encapsulation
	// or not): delete it and add the new one.
	reinstallReplace
)

func (r saReinstall) String() string {
	switch r {
	case reinstallUpdate:
		return "update"
	case reinstallReplace:
		return "replace"
	}
	return "refuse"
}

// saContent is an SA as XFRM_MSG_NEWSA carries it: struct xfrm_usersa_info
// and attributes by type (values alias the request or reply).
type saContent struct {
	info  *nl.XfrmUsersaInfo
	attrs map[uint16][]byte
}

func requestContent(req *nl.NetlinkRequest) (saContent, error) {
	c := saContent{attrs: map[uint16][]byte{}}
	for _, d := range req.Data {
		switch v := d.(type) {
		case *nl.XfrmUsersaInfo:
			c.info = v
		case *nl.RtAttr:
			c.attrs[v.Type] = v.Data
		}
	}
	if c.info == nil {
		return c, errors.New("xfrm: SA request without xfrm_usersa_info")
	}
	return c, nil
}

// kernelContent parses a XFRM_MSG_GETSA reply.
func kernelContent(b []byte) (saContent, error) {
	c := saContent{attrs: map[uint16][]byte{}}
	if len(b) < nl.SizeofXfrmUsersaInfo {
		return c, fmt.Errorf("xfrm: SA reply of %d bytes", len(b))
	}
	c.info = nl.DeserializeXfrmUsersaInfo(b[:nl.SizeofXfrmUsersaInfo])
	attrs, err := nl.ParseRouteAttr(b[nl.SizeofXfrmUsersaInfo:])
	if err != nil {
		return c, fmt.Errorf("xfrm: SA reply attributes: %w", err)
	}
	for _, a := range attrs {
		c.attrs[a.Attr.Type] = a.Value
	}
	return c, nil
}

var algorithmAttrs = []uint16{nl.XFRMA_ALG_AEAD, nl.XFRMA_ALG_CRYPT, nl.XFRMA_ALG_AUTH_TRUNC}

// reinstallAction compares the kernel's SA (a GETSA reply) with the NEWSA
// request that met EEXIST.
func reinstallAction(kernel []byte, req *nl.NetlinkRequest, owned func(reqid int) bool) saReinstall {
	want, err := requestContent(req)
	if err != nil {
		return reinstallRefuse
	}
	have, err := kernelContent(kernel)
	if err != nil || !owned(int(have.info.Reqid)) {
		return reinstallRefuse
	}
	larval := true
	for _, t := range algorithmAttrs {
		larval = larval && have.attrs[t] == nil
	}
	if larval {
		return reinstallUpdate
	}
	const esn = 128 // XFRM_STATE_ESN
	if have.info.Reqid != want.info.Reqid || have.info.Mode != want.info.Mode ||
		have.info.Family != want.info.Family || have.info.Saddr != want.info.Saddr ||
		have.info.Flags&esn != want.info.Flags&esn {
		return reinstallReplace
	}
	for _, t := range algorithmAttrs {
		if !sameAlgorithm(want.attrs[t], have.attrs[t]) {
			return reinstallReplace
		}
	}
	if replayWindow(want.attrs[nl.XFRMA_REPLAY_ESN_VAL]) != replayWindow(have.attrs[nl.XFRMA_REPLAY_ESN_VAL]) ||
		encapType(want.attrs[nl.XFRMA_ENCAP]) != encapType(have.attrs[nl.XFRMA_ENCAP]) ||
		u32Attr(want.attrs[nl.XFRMA_IF_ID]) != u32Attr(have.attrs[nl.XFRMA_IF_ID]) {
		return reinstallReplace
	}
	return reinstallUpdate
}

// sameAlgorithm compares two struct xfrm_algo{,_auth,_aead}: name, key
// length, ICV or truncation length, key. A kernel in lockdown
// (confidentiality) reports keys as zeros; such a key counts as the same,
// since the SA is veil's and its SPI is the same.
func sameAlgorithm(want, have []byte) bool {
	if want == nil || have == nil || len(want) != len(have) || len(want) < 68 {
		return want == nil && have == nil
	}
	cstr := func(b []byte) []byte {
		if i := bytes.IndexByte(b, 0); i >= 0 {
			return b[:i]
		}
		return b
	}
	if !bytes.Equal(cstr(want[:64]), cstr(have[:64])) {
		return false
	}
	keyLen := int(binary.NativeEndian.Uint32(want[64:])+7) / 8
	if keyLen > len(want)-64 {
		return false
	}
	hdr := len(want) - keyLen
	if !bytes.Equal(want[64:hdr], have[64:hdr]) {
		return false
	}
	key := have[hdr:]
	redacted := true
	for _, b := range key {
		redacted = redacted && b == 0
	}
	return redacted || subtle.ConstantTimeCompare(want[hdr:], key) == 1
}

// replayWindow is struct xfrm_replay_state_esn's replay_window (0: none).
func replayWindow(b []byte) uint32 {
	if len(b) < 24 {
		return 0
	}
	return binary.NativeEndian.Uint32(b[20:])
}

// encapType is struct xfrm_encap_tmpl's encap_type (0: none).
func encapType(b []byte) uint16 {
	if len(b) < 2 {
		return 0
	}
	return binary.NativeEndian.Uint16(b)
}

func u32Attr(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.NativeEndian.Uint32(b)
}

// reinstallSA handles EEXIST from XFRM_MSG_NEWSA (see saReinstall); exists
// is that error, returned as it is when the SA is not veil's.
func (d *Dataplane) reinstallSA(sa *provider.ChildSA, req *nl.NetlinkRequest, exists error) error {
	cur, err := d.getSA(sa)
	if err != nil {
		return exists
	}
	action := reinstallAction(cur, req, d.owned)
	clear(cur) // the kernel's copy of the keys
	switch action {
	case reinstallUpdate:
		// UPDSA never changes an SA's offload; leaving the attribute out
		// keeps the kernel from setting up the device for the discarded
		// temporary state.
		upd := *req
		upd.Data = nil
		for _, a := range req.Data {
			if rt, ok := a.(*nl.RtAttr); ok && rt.Type == nl.XFRMA_OFFLOAD_DEV {
				continue
			}
			upd.Data = append(upd.Data, a)
		}
		upd.Type = nl.XFRM_MSG_UPDSA
		upd.Flags = unix.NLM_F_REQUEST | unix.NLM_F_ACK
		_, err := d.execute(&upd, 0)
		return err
	case reinstallReplace:
		d.log.Warn("xfrm: replacing an SA that had the same SPI and other content",
			"spi", fmt.Sprintf("0x%08x", sa.SPI), "dst", sa.Dst)
		ref := &netlink.XfrmState{Dst: ipOf(sa.Dst), Spi: int(sa.SPI), Proto: netlink.XFRM_PROTO_ESP}
		if sa.Mark != 0 {
			ref.Mark = &netlink.XfrmMark{Value: sa.Mark, Mask: 0xffffffff}
		}
		if err := d.h.XfrmStateDel(ref); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("delete the SA it replaces: %w", err)
		}
		_, err := d.execute(req, 0)
		return err
	}
	return exists
}

// getSA reads the kernel's SA with sa's destination, SPI and mark
// (XFRM_MSG_GETSA; the reply holds its keys: the caller clears it).
func (d *Dataplane) getSA(sa *provider.ChildSA) ([]byte, error) {
	msg := &nl.XfrmUsersaId{Spi: nl.Swap32(sa.SPI), Family: uint16(familyOf(sa.Dst)), Proto: unix.IPPROTO_ESP}
	msg.Daddr.FromIP(ipOf(sa.Dst))
	req := nl.NewNetlinkRequest(nl.XFRM_MSG_GETSA, unix.NLM_F_ACK)
	req.AddData(msg)
	if sa.Mark != 0 {
		req.AddData(nl.NewRtAttr(nl.XFRMA_MARK, markAttr(sa.Mark)))
	}
	msgs, err := d.execute(req, nl.XFRM_MSG_NEWSA)
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, errors.New("xfrm: empty GETSA reply")
	}
	return msgs[0], nil
}

// installPolicy adds kp; when the kernel holds a policy with its selector,
// direction, mark and if_id that is veil's, it replaces it in place
// (XFRM_MSG_UPDPOLICY: no moment without a policy). added reports whether
// kp is new, so a failed InstallPolicy removes only what it added.
func (d *Dataplane) installPolicy(kp *netlink.XfrmPolicy) (added bool, err error) {
	err = d.h.XfrmPolicyAdd(kp)
	if err == nil || !errors.Is(err, unix.EEXIST) || !d.ownsPolicy(kp) {
		return err == nil, err
	}
	return false, d.h.XfrmPolicyUpdate(kp)
}

// ownsPolicy reports whether the kernel's policy with kp's selector is
// veil's: a template in veil's reqid band, or a bypass policy this
// Dataplane installed.
func (d *Dataplane) ownsPolicy(kp *netlink.XfrmPolicy) bool {
	cur, err := d.h.XfrmPolicyGet(kp)
	if err != nil {
		return false
	}
	for _, t := range cur.Tmpls {
		if d.owned(t.Reqid) {
			return true
		}
	}
	return len(cur.Tmpls) == 0 && containsSelector(d.bypass, kp)
}
