// Command espinject proves that a kernel's ESP input drops what it must: it
// sends one UDP datagram through an ESP SA, captures the ESP frame that
// leaves the interface (AF_PACKET), and sends it back onto the link several
// times unchanged (replays), once with a later sequence number and a flipped
// ciphertext byte (tampered: the ICV fails), and once with an unknown SPI.
// The receiver's counters (ip -s xfrm state, /proc/net/xfrm_stat) and a
// sink that counts delivered datagrams show what the kernel did.
//
//	espinject inject -if va -to 10.80.0.2:5300 -replays 5
//	espinject sink -listen 10.80.0.2:5300 -for 20s   # prints "delivered N"
//
// IPv4 only (the lab's topology); run as root inside the sender's namespace.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: espinject inject|sink [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "inject":
		err = inject(os.Args[2:])
	case "sink":
		err = sink(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "espinject:", err)
		os.Exit(1)
	}
}

const ethHeader = 14

func inject(args []string) error {
	fs := flag.NewFlagSet("inject", flag.ExitOnError)
	ifname := fs.String("if", "", "interface the ESP packets leave by")
	to := fs.String("to", "", "UDP destination (addr:port) protected by the SA")
	replays := fs.Int("replays", 5, "how often to resend the captured frame unchanged")
	fs.Parse(args)
	dst, err := netip.ParseAddrPort(*to)
	if err != nil || !dst.Addr().Is4() {
		return fmt.Errorf("-to: need an IPv4 addr:port, got %q", *to)
	}
	ifi, err := net.InterfaceByName(*ifname)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return fmt.Errorf("packet socket: %w", err)
	}
	defer unix.Close(fd)
	ll := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}
	if err := unix.Bind(fd, ll); err != nil {
		return fmt.Errorf("bind %s: %w", *ifname, err)
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})

	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("veil espinject probe")); err != nil {
		return fmt.Errorf("send probe: %w", err)
	}
	frame, err := captureESP(fd, dst.Addr(), 10*time.Second)
	if err != nil {
		return err
	}
	ip := frame[ethHeader:]
	ihl := int(ip[0]&0x0f) * 4
	esp := ip[ihl:]
	spi, seq := binary.BigEndian.Uint32(esp[0:]), binary.BigEndian.Uint32(esp[4:])
	fmt.Printf("captured spi=0x%08x seq=%d len=%d\n", spi, seq, len(ip))

	send := func(f []byte) error {
		return unix.Sendto(fd, f, 0, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index})
	}
	for i := 0; i < *replays; i++ {
		if err := send(frame); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	}
	// Tampered: a sequence number the window has not seen (so the replay
	// check passes) and one flipped ciphertext byte: only the ICV catches it.
	tampered := append([]byte(nil), frame...)
	tesp := tampered[ethHeader+ihl:]
	binary.BigEndian.PutUint32(tesp[4:], seq+1000)
	tesp[len(tesp)-20] ^= 0x01
	if err := send(tampered); err != nil {
		return fmt.Errorf("tampered: %w", err)
	}
	wrong := append([]byte(nil), frame...)
	binary.BigEndian.PutUint32(wrong[ethHeader+ihl:], spi^0x5a5a5a5a)
	if err := send(wrong); err != nil {
		return fmt.Errorf("wrong SPI: %w", err)
	}
	fmt.Printf("sent replays=%d tampered=1 wrong-spi=1 (spi=0x%08x)\n", *replays, spi^0x5a5a5a5a)
	return nil
}

// captureESP reads frames until an outgoing IPv4 ESP packet to dst appears.
func captureESP(fd int, dst netip.Addr, timeout time.Duration) ([]byte, error) {
	buf := make([]byte, 65536)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("capture: %w", err)
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Pkttype != unix.PACKET_OUTGOING || n < ethHeader+20+8 {
			continue
		}
		f := buf[:n]
		if binary.BigEndian.Uint16(f[12:]) != unix.ETH_P_IP {
			continue
		}
		ip := f[ethHeader:]
		if ip[0]>>4 != 4 || ip[9] != unix.IPPROTO_ESP || netip.AddrFrom4([4]byte(ip[16:20])) != dst {
			continue
		}
		return append([]byte(nil), f...), nil
	}
	return nil, errors.New("no outgoing ESP packet seen: is the destination protected by an SA?")
}

func sink(args []string) error {
	fs := flag.NewFlagSet("sink", flag.ExitOnError)
	listen := fs.String("listen", "", "UDP address to count datagrams on")
	dur := fs.Duration("for", 30*time.Second, "how long to listen (SIGTERM ends it early)")
	fs.Parse(args)
	addr, err := netip.ParseAddrPort(*listen)
	if err != nil {
		return err
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "listening")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case <-stop:
		case <-time.After(*dur):
		}
		conn.Close()
	}()
	delivered := 0
	buf := make([]byte, 65536)
	for {
		if _, _, err := conn.ReadFromUDPAddrPort(buf); err != nil {
			break
		}
		delivered++
	}
	fmt.Printf("delivered %d\n", delivered)
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
