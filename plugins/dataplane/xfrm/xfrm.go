// Package xfrm is veil's Linux dataplane: it implements provider.Dataplane
// with the kernel's XFRM framework over netlink (ESP SAs, policies, SPI
// allocation, ACQUIRE/EXPIRE events, counters, crypto offload).
//
// Ownership: every SA and policy veil installs carries a kernel reqid in
// veil's band, ReqIDBase + engine ReqID (ReqIDBase defaults to 0x7e1a0000,
// engine ReqIDs 0..0xffff). On start and on Close everything in the band is
// removed, so a crashed daemon leaves nothing behind once it restarts, and
// SAs and policies of other IKE daemons (charon uses small reqids) are left
// alone. Use one Dataplane per network namespace.
package xfrm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transport"
)

// DefaultReqIDBase is the start of veil's reqid band.
const DefaultReqIDBase = 0x7e1a0000

// maxEngineReqID is the largest engine ReqID that fits the band.
const maxEngineReqID = 0xffff

// Options configure a Dataplane. The zero value works on the caller's
// network namespace.
type Options struct {
	// NetNS is the namespace to manage; 0 means the current one.
	NetNS netns.NsHandle
	// ReqIDBase moves veil's reqid band (low 16 bits must be zero).
	ReqIDBase uint32
	// PacketOffload asks capable NICs for full packet offload instead of
	// crypto offload (XFRM_OFFLOAD_PACKET).
	PacketOffload bool
	Logger        *slog.Logger
}

// Dataplane is the XFRM implementation of provider.Dataplane.
type Dataplane struct {
	ns        netns.NsHandle
	base      uint32
	packetOff bool
	log       *slog.Logger

	mu   sync.Mutex
	h    *netlink.Handle
	sock *nl.SocketHandle // our own XFRM socket, for requests netlink lacks
	sas  map[provider.SAKey]saRecord
	// allocated SPIs: the kernel holds a larval SA that InstallSA replaces.
	allocated map[provider.SAKey]bool
	bypass    []netlink.XfrmPolicy
	// devices already reported as lacking offload (logged once each).
	noOffload map[string]bool
	// probe reports whether a device does ESP offload; a test double may
	// replace it.
	probe func(ifname string) (bool, error)
}

type saRecord struct {
	mark, ifid uint32
	src        netip.Addr
}

var _ provider.Dataplane = (*Dataplane)(nil)

// New opens netlink in the configured namespace and removes leftovers of an
// earlier veil (everything in its reqid band).
func New(opts Options) (*Dataplane, error) {
	d := &Dataplane{
		ns:        opts.NetNS,
		base:      opts.ReqIDBase,
		packetOff: opts.PacketOffload,
		log:       opts.Logger,
		sas:       map[provider.SAKey]saRecord{},
		allocated: map[provider.SAKey]bool{},
		noOffload: map[string]bool{},
	}
	if d.ns == 0 {
		d.ns = netns.None()
	}
	if d.base == 0 {
		d.base = DefaultReqIDBase
	}
	if d.base&maxEngineReqID != 0 {
		return nil, fmt.Errorf("xfrm: ReqIDBase 0x%x must have its low 16 bits zero", d.base)
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	d.probe = func(ifname string) (bool, error) { return espOffloadActive(d.ns, ifname) }
	var err error
	if d.h, err = netlink.NewHandleAt(d.ns); err != nil {
		return nil, fmt.Errorf("xfrm: netlink: %w", err)
	}
	s, err := nl.GetNetlinkSocketAt(d.ns, netns.None(), unix.NETLINK_XFRM)
	if err != nil {
		d.h.Close()
		return nil, fmt.Errorf("xfrm: netlink xfrm socket: %w", err)
	}
	d.sock = &nl.SocketHandle{Socket: s}
	if n, err := d.Cleanup(); err != nil {
		d.Close()
		return nil, err
	} else if n > 0 {
		d.log.Info("xfrm: removed leftover SAs and policies of an earlier run", "count", n)
	}
	return d, nil
}

// Close removes every SA and policy this veil installed and releases netlink.
func (d *Dataplane) Close() error {
	_, err := d.Cleanup()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sock != nil {
		d.sock.Socket.Close()
		d.sock = nil
	}
	if d.h != nil {
		d.h.Close()
		d.h = nil
	}
	return err
}

func (d *Dataplane) owned(kernelReqID int) bool {
	r := uint32(kernelReqID)
	return r >= d.base && r <= d.base+maxEngineReqID
}

func (d *Dataplane) kernelReqID(reqid uint32) (uint32, error) {
	if reqid > maxEngineReqID {
		return 0, fmt.Errorf("xfrm: reqid %d outside 0..%d", reqid, maxEngineReqID)
	}
	return d.base + reqid, nil
}

// Cleanup removes every SA and policy in veil's reqid band (and bypass
// policies this Dataplane installed) and reports how many it removed.
func (d *Dataplane) Cleanup() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h == nil {
		return 0, nil
	}
	var errs []error
	n := 0
	policies, err := d.h.XfrmPolicyList(netlink.FAMILY_ALL)
	if err != nil {
		errs = append(errs, fmt.Errorf("xfrm: list policies: %w", err))
	}
	for i := range policies {
		p := &policies[i]
		mine := false
		for _, t := range p.Tmpls {
			mine = mine || d.owned(t.Reqid)
		}
		if !mine {
			continue
		}
		if err := d.h.XfrmPolicyDel(p); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("xfrm: delete policy %v: %w", p, err))
			continue
		}
		n++
	}
	for i := range d.bypass {
		if err := d.h.XfrmPolicyDel(&d.bypass[i]); err == nil {
			n++
		}
	}
	d.bypass = nil
	states, err := d.h.XfrmStateList(netlink.FAMILY_ALL)
	if err != nil {
		errs = append(errs, fmt.Errorf("xfrm: list SAs: %w", err))
	}
	for i := range states {
		s := &states[i]
		if !d.owned(s.Reqid) {
			continue
		}
		if s.Spi == 0 {
			// A larval SA from an ACQUIRE has no SPI to delete it by.
			if err := d.dropLarval(s); err != nil {
				errs = append(errs, err)
			} else {
				n++
			}
			continue
		}
		if err := d.h.XfrmStateDel(s); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("xfrm: delete SA 0x%08x: %w", uint32(s.Spi), err))
			continue
		}
		n++
	}
	clear(d.sas)
	clear(d.allocated)
	return n, errors.Join(errs...)
}

// dropLarval removes a larval (ACQUIRE) SA: the kernel deletes it when an SA
// with the same addresses, mode and reqid is added, so add a placeholder and
// delete that.
func (d *Dataplane) dropLarval(s *netlink.XfrmState) error {
	mode := provider.Transport
	if s.Mode == netlink.XFRM_MODE_TUNNEL {
		mode = provider.Tunnel
	}
	sa := &provider.ChildSA{SPI: 0xcffffff0, Src: addrOf(s.Src), Dst: addrOf(s.Dst), Mode: mode,
		Encryption: "aes-gcm-16", EncKey: make([]byte, 20), IfID: uint32(s.Ifid)}
	if s.Mark != nil {
		sa.Mark = s.Mark.Value
	}
	req, err := newSARequest(sa, uint32(s.Reqid), nil)
	if err != nil {
		return err
	}
	if _, err := d.execute(req, 0); err != nil {
		return fmt.Errorf("xfrm: replace larval SA %v -> %v: %w", sa.Src, sa.Dst, err)
	}
	ref := &netlink.XfrmState{Dst: ipOf(sa.Dst), Spi: int(sa.SPI), Proto: netlink.XFRM_PROTO_ESP, Mark: s.Mark, Ifid: s.Ifid}
	if err := d.h.XfrmStateDel(ref); err != nil {
		return fmt.Errorf("xfrm: delete placeholder SA: %w", err)
	}
	return nil
}

// execute sends a request we built ourselves on our XFRM socket.
func (d *Dataplane) execute(req *nl.NetlinkRequest, resType uint16) ([][]byte, error) {
	if d.sock == nil {
		return nil, errors.New("xfrm: dataplane closed")
	}
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_XFRM: d.sock}
	return req.Execute(unix.NETLINK_XFRM, resType)
}

// AllocateSPI reserves an inbound SPI (src is the peer, dst us). The kernel
// keeps a larval SA for it until InstallSA replaces it (or
// net.core.xfrm_acq_expires passes, 30 s by default).
func (d *Dataplane) AllocateSPI(ctx context.Context, src, dst netip.Addr) (uint32, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return 0, fmt.Errorf("xfrm: allocate SPI: need addresses of one family, got %v -> %v", src, dst)
	}
	msg := &nl.XfrmUserSpiInfo{}
	msg.XfrmUsersaInfo.Id.Daddr.FromIP(ipOf(dst))
	msg.XfrmUsersaInfo.Id.Proto = unix.IPPROTO_ESP
	msg.XfrmUsersaInfo.Saddr.FromIP(ipOf(src))
	msg.XfrmUsersaInfo.Family = uint16(familyOf(dst))
	msg.XfrmUsersaInfo.Reqid = d.base // owned while larval
	msg.Min = 0xc0000000              // well away from small hand-configured SPIs
	msg.Max = 0xcfffffff
	req := nl.NewNetlinkRequest(nl.XFRM_MSG_ALLOCSPI, 0)
	req.AddData(msg)
	d.mu.Lock()
	defer d.mu.Unlock()
	msgs, err := d.execute(req, nl.XFRM_MSG_NEWSA)
	if err != nil {
		return 0, fmt.Errorf("xfrm: allocate SPI %v -> %v: %w", src, dst, err)
	}
	if len(msgs) == 0 || len(msgs[0]) < nl.SizeofXfrmUsersaInfo {
		return 0, errors.New("xfrm: allocate SPI: short kernel reply")
	}
	info := nl.DeserializeXfrmUsersaInfo(msgs[0])
	spi := nl.Swap32(info.Id.Spi)
	d.allocated[provider.SAKey{Dst: dst, SPI: spi}] = true
	return spi, nil
}

// InstallSA installs one ESP SA. An SA whose SPI came from AllocateSPI
// replaces the kernel's larval SA (XFRM_MSG_UPDSA). Installing an SA again
// succeeds (see reinstallSA).
func (d *Dataplane) InstallSA(ctx context.Context, sa *provider.ChildSA) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	reqid, err := d.kernelReqID(sa.ReqID)
	if err != nil {
		return err
	}
	off, err := d.offloadFor(sa)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	key := provider.SAKey{Dst: sa.Dst, SPI: sa.SPI}
	err = d.addSA(sa, reqid, off, d.allocated[key])
	if err != nil && off != nil && sa.Offload == "preferred" {
		d.log.Warn("xfrm: offload rejected by the kernel, using software crypto", "spi", fmt.Sprintf("0x%08x", sa.SPI), "err", err)
		err = d.addSA(sa, reqid, nil, d.allocated[key])
	}
	if err != nil {
		return err
	}
	delete(d.allocated, key)
	d.sas[key] = saRecord{mark: sa.Mark, ifid: sa.IfID, src: sa.Src}
	return nil
}

func (d *Dataplane) addSA(sa *provider.ChildSA, reqid uint32, off *offloadRequest, update bool) error {
	req, err := newSARequest(sa, reqid, off)
	if err != nil {
		return err
	}
	defer zeroRequest(req)
	if update {
		req.Type = nl.XFRM_MSG_UPDSA
		req.Flags = unix.NLM_F_REQUEST | unix.NLM_F_ACK
		_, err = d.execute(req, 0)
		if !errors.Is(err, unix.ESRCH) {
			return wrapSAErr(sa, err)
		}
		// The larval SA expired: add it afresh.
		req.Type = nl.XFRM_MSG_NEWSA
		req.Flags = unix.NLM_F_REQUEST | unix.NLM_F_CREATE | unix.NLM_F_EXCL | unix.NLM_F_ACK
	}
	_, err = d.execute(req, 0)
	if errors.Is(err, unix.EEXIST) {
		err = d.reinstallSA(sa, req, err)
	}
	return wrapSAErr(sa, err)
}

func wrapSAErr(sa *provider.ChildSA, err error) error {
	if err == nil {
		return nil
	}
	dir := "outbound"
	if sa.Inbound {
		dir = "inbound"
	}
	return fmt.Errorf("xfrm: install %s SA 0x%08x %v -> %v (%s): %w", dir, sa.SPI, sa.Src, sa.Dst, sa.Encryption, err)
}

// zeroRequest wipes key material from a request's attributes.
func zeroRequest(req *nl.NetlinkRequest) {
	for _, a := range req.Data {
		if rt, ok := a.(*nl.RtAttr); ok {
			switch rt.Type {
			case nl.XFRMA_ALG_AEAD, nl.XFRMA_ALG_CRYPT, nl.XFRMA_ALG_AUTH_TRUNC:
				clear(rt.Data)
			}
		}
	}
}

// DeleteSA removes an SA veil installed.
func (d *Dataplane) DeleteSA(ctx context.Context, key provider.SAKey) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h == nil {
		return errors.New("xfrm: dataplane closed")
	}
	st := d.stateRef(key)
	if err := d.h.XfrmStateDel(st); err != nil {
		return fmt.Errorf("xfrm: delete SA 0x%08x -> %v: %w", key.SPI, key.Dst, err)
	}
	delete(d.sas, key)
	delete(d.allocated, key)
	return nil
}

func (d *Dataplane) stateRef(key provider.SAKey) *netlink.XfrmState {
	st := &netlink.XfrmState{Dst: ipOf(key.Dst), Spi: int(key.SPI), Proto: netlink.XFRM_PROTO_ESP}
	if r, ok := d.sas[key]; ok {
		if r.mark != 0 {
			st.Mark = &netlink.XfrmMark{Value: r.mark, Mask: 0xffffffff}
		}
		st.Ifid = int(r.ifid)
	}
	return st
}

// Counters reads the kernel's statistics of each SA, in the order of keys.
func (d *Dataplane) Counters(ctx context.Context, keys []provider.SAKey) ([]provider.Counters, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h == nil {
		return nil, errors.New("xfrm: dataplane closed")
	}
	out := make([]provider.Counters, len(keys))
	for i, k := range keys {
		st, err := d.h.XfrmStateGet(d.stateRef(k))
		if err != nil {
			return nil, fmt.Errorf("xfrm: counters of SA 0x%08x -> %v: %w", k.SPI, k.Dst, err)
		}
		s := st.Statistics
		c := provider.Counters{
			Bytes:        s.Bytes,
			Packets:      s.Packets,
			ReplayDrops:  uint64(s.Replay) + uint64(s.ReplayWindow),
			AuthFailures: uint64(s.Failed),
		}
		if s.UseTime != 0 {
			c.LastUse = time.Unix(int64(s.UseTime), 0)
		}
		out[i] = c
	}
	return out, nil
}

// EnableESPInUDP and BypassSocket prepare IKE sockets for this dataplane;
// they live with veild's sockets in core/transport (UDPConfig.KernelIPsec)
// and are here for programs that bring their own sockets.
func EnableESPInUDP(fd int) error { return transport.EnableESPInUDP(fd) }

// BypassSocket: see EnableESPInUDP.
func BypassSocket(fd int) error { return transport.BypassIPsecPolicies(fd) }

// inNetNS runs fn on a thread switched into ns (no switch for None).
func inNetNS(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		// The thread is left locked (and so discarded) if switching back fails.
		runtimeLockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err == nil {
			runtimeUnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// routeDevice is the interface the kernel would use towards a.
func (d *Dataplane) routeDevice(a netip.Addr) (net.Interface, error) {
	d.mu.Lock()
	h := d.h
	d.mu.Unlock()
	if h == nil {
		return net.Interface{}, errors.New("xfrm: dataplane closed")
	}
	routes, err := h.RouteGet(ipOf(a))
	if err != nil || len(routes) == 0 {
		return net.Interface{}, fmt.Errorf("xfrm: no route to %v: %v", a, err)
	}
	link, err := h.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return net.Interface{}, fmt.Errorf("xfrm: device of route to %v: %w", a, err)
	}
	return net.Interface{Index: link.Attrs().Index, Name: link.Attrs().Name}, nil
}
