package xfrm

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/veil-ipsec/veil/core/provider"
)

func runtimeLockOSThread()   { runtime.LockOSThread() }
func runtimeUnlockOSThread() { runtime.UnlockOSThread() }

// espOffloadFeature is the ethtool feature string of NETIF_F_HW_ESP.
const espOffloadFeature = "esp-hw-offload"

// offloadFor decides XFRMA_OFFLOAD_DEV for sa: nil for software crypto, an
// error when "required" cannot be met.
func (d *Dataplane) offloadFor(sa *provider.ChildSA) (*offloadRequest, error) {
	switch sa.Offload {
	case "", "off":
		return nil, nil
	case "preferred", "required":
	default:
		return nil, fmt.Errorf("xfrm: offload %q: want off, preferred or required", sa.Offload)
	}
	// The device facing the peer: towards Dst for outbound, Src for inbound.
	peer := sa.Dst
	if sa.Inbound {
		peer = sa.Src
	}
	dev, err := d.routeDevice(peer)
	if err != nil {
		if sa.Offload == "required" {
			return nil, fmt.Errorf("xfrm: offload required for SA 0x%08x: %w", sa.SPI, err)
		}
		return nil, nil
	}
	capable, err := d.probe(dev.Name)
	if err != nil || !capable {
		reason := fmt.Sprintf("device %s lacks %s", dev.Name, espOffloadFeature)
		if err != nil {
			reason = fmt.Sprintf("device %s: cannot read %s: %v", dev.Name, espOffloadFeature, err)
		}
		if sa.Offload == "required" {
			return nil, fmt.Errorf("xfrm: offload required for SA 0x%08x but %s", sa.SPI, reason)
		}
		d.mu.Lock()
		first := !d.noOffload[dev.Name]
		d.noOffload[dev.Name] = true
		d.mu.Unlock()
		if first {
			d.log.Info("xfrm: offload preferred but unavailable, using software crypto", "device", dev.Name, "reason", reason)
		}
		return nil, nil
	}
	off := &offloadRequest{ifindex: dev.Index}
	if sa.Inbound {
		off.flags |= offloadInbound
	}
	if sa.Dst.Is6() {
		off.flags |= offloadIPv6
	}
	if d.packetOff {
		off.flags |= offloadPacket
	}
	return off, nil
}

// ethtool ioctl numbers (linux/ethtool.h).
const (
	ethtoolGStrings  = 0x1b
	ethtoolGSSetInfo = 0x37
	ethtoolGFeatures = 0x3a
	ethSSFeatures    = 4
	ethGStringLen    = 32
)

// espOffloadActive reports whether ifname in ns has esp-hw-offload active.
func espOffloadActive(ns netns.NsHandle, ifname string) (bool, error) {
	var active bool
	err := inNetNS(ns, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		// How many feature strings?
		sset := make([]byte, 16+4)
		binary.NativeEndian.PutUint32(sset[0:], ethtoolGSSetInfo)
		binary.NativeEndian.PutUint64(sset[8:], 1<<ethSSFeatures)
		if err := ethtool(fd, ifname, sset); err != nil {
			return fmt.Errorf("ETHTOOL_GSSET_INFO: %w", err)
		}
		n := int(binary.NativeEndian.Uint32(sset[16:]))
		if n == 0 || n > 4096 {
			return fmt.Errorf("ETHTOOL_GSSET_INFO: %d features", n)
		}
		strs := make([]byte, 12+n*ethGStringLen)
		binary.NativeEndian.PutUint32(strs[0:], ethtoolGStrings)
		binary.NativeEndian.PutUint32(strs[4:], ethSSFeatures)
		binary.NativeEndian.PutUint32(strs[8:], uint32(n))
		if err := ethtool(fd, ifname, strs); err != nil {
			return fmt.Errorf("ETHTOOL_GSTRINGS: %w", err)
		}
		bit := -1
		for i := 0; i < n; i++ {
			s := strs[12+i*ethGStringLen : 12+(i+1)*ethGStringLen]
			if l := indexByte(s, 0); l >= 0 {
				s = s[:l]
			}
			if string(s) == espOffloadFeature {
				bit = i
				break
			}
		}
		if bit < 0 {
			return nil // the kernel does not know the feature at all
		}
		blocks := (n + 31) / 32
		feats := make([]byte, 8+16*blocks)
		binary.NativeEndian.PutUint32(feats[0:], ethtoolGFeatures)
		binary.NativeEndian.PutUint32(feats[4:], uint32(blocks))
		if err := ethtool(fd, ifname, feats); err != nil {
			return fmt.Errorf("ETHTOOL_GFEATURES: %w", err)
		}
		// block {available, requested, active, never_changed}
		activeWord := binary.NativeEndian.Uint32(feats[8+16*(bit/32)+8:])
		active = activeWord&(1<<(bit%32)) != 0
		return nil
	})
	return active, err
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// ifreqData is struct ifreq with ifr_data.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

func ethtool(fd int, ifname string, buf []byte) error {
	if len(ifname) >= unix.IFNAMSIZ {
		return fmt.Errorf("interface name %q too long", ifname)
	}
	var ifr ifreqData
	copy(ifr.name[:], ifname)
	ifr.data = unsafe.Pointer(&buf[0])
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(buf)
	if errno != 0 {
		return errno
	}
	return nil
}
