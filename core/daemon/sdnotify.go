package daemon

import (
	"net"
	"os"
)

// sdNotify tells systemd (Type=notify) about the daemon's state, e.g.
// "READY=1" or "RELOADING=1". Without NOTIFY_SOCKET it does nothing: the
// protocol is one datagram, so no dependency is needed for it.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' { // abstract namespace
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}
