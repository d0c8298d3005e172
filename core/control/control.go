// Package control serves and dials veild's control API: gRPC over a unix
// socket that only its owner (and optionally one group) may open.
//
// The daemon implements controlpb.ControlServer; veilctl and other programs
// use Dial. The socket is created with mode 0600 (0660 with a control group)
// and every connection's peer credentials are checked as well, so a socket
// left in a world-writable directory still refuses other users.
package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/veil-ipsec/veil/core/control/controlpb"
)

// DefaultSocket is where veild listens unless configured otherwise.
const DefaultSocket = "/run/veil/veil.sock"

// Listen creates the control socket at path. group, when not empty, is the
// name or numeric ID of a group whose members may also connect.
func Listen(path, group string) (net.Listener, error) {
	gid := -1
	if group != "" {
		g, err := lookupGroup(group)
		if err != nil {
			return nil, err
		}
		gid = g
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	// A stale socket from a crashed daemon would make bind fail; a live
	// daemon still answers on it, so only remove what nobody serves.
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another veild is running", path)
	}
	_ = os.Remove(path)
	// umask-independent: bind, then chmod before anyone could rely on it,
	// with the directory itself not writable by others.
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	mode := os.FileMode(0o600)
	if gid >= 0 {
		mode = 0o660
		if err := os.Chown(path, -1, gid); err != nil {
			l.Close()
			return nil, fmt.Errorf("control socket group: %w", err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, err
	}
	return &credListener{UnixListener: l.(*net.UnixListener), gid: gid}, nil
}

func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("control_group %q: %w", name, err)
	}
	return strconv.Atoi(g.Gid)
}

// credListener accepts only peers running as root, as the daemon's user, or
// (with a control group) as a member of that group.
type credListener struct {
	*net.UnixListener
	gid int
}

func (l *credListener) Accept() (net.Conn, error) {
	for {
		c, err := l.UnixListener.AcceptUnix()
		if err != nil {
			return nil, err
		}
		if err := l.allowed(c); err != nil {
			c.Close()
			continue
		}
		return c, nil
	}
}

func (l *credListener) allowed(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if cred.Uid == 0 || int(cred.Uid) == os.Getuid() {
		return nil
	}
	if l.gid >= 0 && int(cred.Gid) == l.gid {
		return nil
	}
	return errors.New("control: peer not allowed")
}

// NewServer returns a gRPC server for the control API backed by impl.
func NewServer(impl controlpb.ControlServer) *grpc.Server {
	s := grpc.NewServer(grpc.Creds(insecure.NewCredentials()))
	controlpb.RegisterControlServer(s, impl)
	return s
}

// Client is a connection to veild's control API.
type Client struct {
	controlpb.ControlClient
	conn *grpc.ClientConn
}

// Dial connects to the control socket at path. It does not block; the first
// call reports a daemon that is not running.
func Dial(path string) (*Client, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("control socket %s: %w (is veild running?)", path, err)
	}
	conn, err := grpc.NewClient("unix://"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}))
	if err != nil {
		return nil, err
	}
	return &Client{ControlClient: controlpb.NewControlClient(conn), conn: conn}, nil
}

// Close ends the connection.
func (c *Client) Close() error { return c.conn.Close() }
