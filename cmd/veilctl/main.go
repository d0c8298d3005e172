// Command veilctl is the operator's CLI over veild's control socket.
//
//	veilctl [--socket PATH] status [CONN] | sas [--json] | initiate CONN[/CHILD] |
//	        terminate CONN | rekey CONN[/CHILD] | reload | plugins [--json] | events
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/status"

	"github.com/veil-ipsec/veil/core/control"
	"github.com/veil-ipsec/veil/core/control/controlpb"
	"github.com/veil-ipsec/veil/core/version"
)

const usage = `usage: veilctl [--socket PATH] COMMAND

commands:
  status [CONN]            daemon status, or one connection with its last failure
  sas [--json]             IKE and Child SAs
  initiate CONN[/CHILD]    bring a connection (and child) up
  terminate CONN           delete a connection's IKE SA and its children
  rekey CONN[/CHILD]       rekey the IKE SA, or one child
  reload                   re-read the configuration (a bad one is refused)
  plugins [--json]         loaded plugins and their state
  events                   stream SA up/down/rekey events
  version                  print veilctl's version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		fmt.Fprintln(stdout, "veilctl", version.Version)
		return 0
	}
	fs := flag.NewFlagSet("veilctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	socket := fs.String("socket", envOr("VEIL_SOCKET", control.DefaultSocket), "control socket path")
	timeout := fs.Duration("timeout", 60*time.Second, "how long to wait for the daemon")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	if cmd == "version" || cmd == "--version" {
		fmt.Fprintln(stdout, "veilctl", version.Version)
		return 0
	}
	c, err := control.Dial(*socket)
	if err != nil {
		fmt.Fprintln(stderr, "veilctl:", err)
		return 1
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cmd != "events" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	if err := dispatch(ctx, c, cmd, rest, stdout); err != nil {
		if errors.Is(err, errUsage) {
			fs.Usage()
			return 2
		}
		if s, ok := status.FromError(err); ok {
			fmt.Fprintln(stderr, "veilctl:", s.Message())
		} else {
			fmt.Fprintln(stderr, "veilctl:", err)
		}
		return 1
	}
	return 0
}

var errUsage = errors.New("usage")

func dispatch(ctx context.Context, c *control.Client, cmd string, args []string, w io.Writer) error {
	switch cmd {
	case "status":
		if len(args) > 1 {
			return errUsage
		}
		conn := ""
		if len(args) == 1 {
			conn = args[0]
		}
		r, err := c.Status(ctx, &controlpb.StatusRequest{Connection: conn})
		if err != nil {
			return err
		}
		printStatus(w, r, conn != "")
	case "sas":
		asJSON := len(args) == 1 && args[0] == "--json"
		if len(args) > 1 || (len(args) == 1 && !asJSON) {
			return errUsage
		}
		r, err := c.ListSAs(ctx, &controlpb.ListSAsRequest{})
		if err != nil {
			return err
		}
		if asJSON {
			return json.NewEncoder(w).Encode(toJSON(r))
		}
		printSAs(w, r)
	case "initiate", "rekey":
		if len(args) != 1 {
			return errUsage
		}
		conn, child, _ := strings.Cut(args[0], "/")
		var r *controlpb.ActionReply
		var err error
		if cmd == "initiate" {
			r, err = c.Initiate(ctx, &controlpb.InitiateRequest{Connection: conn, Child: child})
		} else {
			r, err = c.Rekey(ctx, &controlpb.RekeyRequest{Connection: conn, Child: child})
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(w, r.Message)
	case "terminate":
		if len(args) != 1 {
			return errUsage
		}
		r, err := c.Terminate(ctx, &controlpb.TerminateRequest{Connection: args[0]})
		if err != nil {
			return err
		}
		fmt.Fprintln(w, r.Message)
	case "reload":
		r, err := c.Reload(ctx, &controlpb.ReloadRequest{})
		if err != nil {
			return err
		}
		fmt.Fprintln(w, r.Message)
	case "plugins":
		asJSON := len(args) == 1 && args[0] == "--json"
		if len(args) > 1 || (len(args) == 1 && !asJSON) {
			return errUsage
		}
		r, err := c.ListPlugins(ctx, &controlpb.ListPluginsRequest{})
		if err != nil {
			return err
		}
		if asJSON {
			return json.NewEncoder(w).Encode(pluginsJSON(r))
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tNAME\tSTATE\tRESTARTS\tVERSION\tPATH")
		for _, p := range r.Plugins {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", p.Kind, p.Name, p.State, p.Restarts, p.Version, p.Path)
		}
		tw.Flush()
	case "events":
		s, err := c.Events(ctx, &controlpb.EventsRequest{})
		if err != nil {
			return err
		}
		for {
			ev, err := s.Recv()
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			line := fmt.Sprintf("%s %s %s", ev.Time, ev.Kind, ev.Connection)
			if ev.Child != "" {
				line += "/" + ev.Child
			}
			if ev.SpiI != "" {
				line += fmt.Sprintf(" %s_i %s_r", ev.SpiI, ev.SpiR)
			}
			if ev.Message != "" {
				line += ": " + ev.Message
			}
			fmt.Fprintln(w, line)
		}
	default:
		return errUsage
	}
	return nil
}

func printStatus(w io.Writer, r *controlpb.StatusReply, one bool) {
	if !one {
		fmt.Fprintf(w, "veild %s, up since %s, config %s\n", r.Version, r.StartedAt, r.ConfigPath)
	}
	for _, c := range r.Connections {
		fmt.Fprintf(w, "%s: %s -> %s, %d IKE SA(s), %d Child SA(s), children: %s\n", c.Name,
			strings.Join(c.LocalAddrs, ","), strings.Join(c.RemoteAddrs, ","), c.IkeSas, c.ChildSas,
			strings.Join(c.Children, ","))
		if c.LastFailure != "" {
			fmt.Fprintf(w, "  last failure (%s): %s\n", c.LastFailureAt, c.LastFailure)
		}
	}
}

func printSAs(w io.Writer, r *controlpb.ListSAsReply) {
	if len(r.IkeSas) == 0 {
		fmt.Fprintln(w, "no IKE SAs")
	}
	for _, s := range r.IkeSas {
		role := "responder"
		if s.Initiator {
			role = "initiator"
		}
		fmt.Fprintf(w, "%s: %s, %s[%s] <-> %s, %s_i %s_r\n  %s, established %s\n",
			s.Name, s.State, s.Local, role, s.Remote, s.SpiI, s.SpiR, s.Proposal, s.EstablishedAt)
		if s.Ppk {
			fmt.Fprintln(w, "  keys mixed with a post-quantum preshared key (PPK)")
		}
		if len(s.LocalVips) > 0 {
			fmt.Fprintf(w, "  virtual IP %s assigned by the peer, DNS %s\n", strings.Join(s.LocalVips, " "), strings.Join(s.Dns, " "))
		}
		if len(s.RemoteVips) > 0 {
			fmt.Fprintf(w, "  virtual IP %s leased to the peer\n", strings.Join(s.RemoteVips, " "))
		}
		for _, c := range s.Children {
			fmt.Fprintf(w, "  %s: %s, %s, %s, in %s (%d bytes, %d packets), out %s (%d bytes, %d packets)\n    %s === %s\n",
				c.Name, c.State, strings.ToUpper(c.Mode), c.Proposal, c.SpiIn, c.BytesIn, c.PacketsIn,
				c.SpiOut, c.BytesOut, c.PacketsOut, strings.Join(c.LocalTs, " "), strings.Join(c.RemoteTs, " "))
		}
	}
}

// The JSON shape of `veilctl sas --json` is a contract; it is spelled out
// here rather than derived from the protobuf so it cannot drift.
type jsonSAs struct {
	IKESAs []jsonIKESA `json:"ike_sas"`
}

type jsonIKESA struct {
	Name          string      `json:"name"`
	State         string      `json:"state"`
	Local         string      `json:"local"`
	Remote        string      `json:"remote"`
	Initiator     bool        `json:"initiator"`
	SPIi          string      `json:"spi_i"`
	SPIr          string      `json:"spi_r"`
	Proposal      string      `json:"proposal"`
	EstablishedAt string      `json:"established_at"`
	Children      []jsonChild `json:"children"`
	LocalVIPs     []string    `json:"local_vips,omitempty"`
	RemoteVIPs    []string    `json:"remote_vips,omitempty"`
	DNS           []string    `json:"dns,omitempty"`
	PPK           bool        `json:"ppk,omitempty"`
}

type jsonChild struct {
	Name       string   `json:"name"`
	State      string   `json:"state"`
	Mode       string   `json:"mode"`
	Proposal   string   `json:"proposal"`
	SPIIn      string   `json:"spi_in"`
	SPIOut     string   `json:"spi_out"`
	LocalTS    []string `json:"local_ts"`
	RemoteTS   []string `json:"remote_ts"`
	BytesIn    uint64   `json:"bytes_in"`
	BytesOut   uint64   `json:"bytes_out"`
	PacketsIn  uint64   `json:"packets_in"`
	PacketsOut uint64   `json:"packets_out"`
}

func toJSON(r *controlpb.ListSAsReply) jsonSAs {
	out := jsonSAs{IKESAs: []jsonIKESA{}}
	for _, s := range r.IkeSas {
		j := jsonIKESA{Name: s.Name, State: s.State, Local: s.Local, Remote: s.Remote,
			Initiator: s.Initiator, SPIi: s.SpiI, SPIr: s.SpiR, Proposal: s.Proposal,
			EstablishedAt: s.EstablishedAt, Children: []jsonChild{},
			LocalVIPs: s.LocalVips, RemoteVIPs: s.RemoteVips, DNS: s.Dns, PPK: s.Ppk}
		for _, c := range s.Children {
			j.Children = append(j.Children, jsonChild{Name: c.Name, State: c.State, Mode: c.Mode,
				Proposal: c.Proposal, SPIIn: c.SpiIn, SPIOut: c.SpiOut,
				LocalTS: nonNil(c.LocalTs), RemoteTS: nonNil(c.RemoteTs),
				BytesIn: c.BytesIn, BytesOut: c.BytesOut, PacketsIn: c.PacketsIn, PacketsOut: c.PacketsOut})
		}
		out.IKESAs = append(out.IKESAs, j)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// pluginJSON is one plugin in `veilctl plugins --json`; the key names are
// a contract, like those of sas --json.
type pluginJSON struct {
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	State    string `json:"state"`
	Restarts int32  `json:"restarts"`
	Version  string `json:"version"`
	Path     string `json:"path"` // "" for a bundled plugin
}

func pluginsJSON(r *controlpb.ListPluginsReply) map[string][]pluginJSON {
	out := []pluginJSON{}
	for _, p := range r.Plugins {
		out = append(out, pluginJSON{Kind: p.Kind, Name: p.Name, State: p.State, Restarts: p.Restarts, Version: p.Version, Path: p.Path})
	}
	return map[string][]pluginJSON{"plugins": out}
}
