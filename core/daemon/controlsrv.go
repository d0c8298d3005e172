package daemon

import (
	"context"
	"encoding/json"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/veil-ipsec/veil/core/control/controlpb"
	"github.com/veil-ipsec/veil/core/ikesa"
	"github.com/veil-ipsec/veil/core/ts"
	"github.com/veil-ipsec/veil/core/version"
)

// controlServer answers veilctl.
type controlServer struct {
	controlpb.UnimplementedControlServer
	d *Daemon
}

// snapshot converts the engine's view through its JSON form: the engine's
// JSON field names are the same contract as the control API's.
func (d *Daemon) snapshot() []*controlpb.IKESA {
	raw, err := json.Marshal(map[string]any{"ike_sas": d.eng.Snapshot()})
	if err != nil {
		d.log.Error("snapshot", "err", err)
		return nil
	}
	var r controlpb.ListSAsReply
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, &r); err != nil {
		d.log.Error("snapshot", "err", err)
		return nil
	}
	return r.IkeSas
}

func (d *Daemon) stats() ikesa.Stats { return d.eng.Stats() }

func (s *controlServer) Status(ctx context.Context, r *controlpb.StatusRequest) (*controlpb.StatusReply, error) {
	d := s.d
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	rep := &controlpb.StatusReply{Version: version.Version, StartedAt: d.started.UTC().Format(time.RFC3339), ConfigPath: d.opts.ConfigPath}
	sas := d.snapshot()
	for _, c := range cfg.Connections {
		if r.Connection != "" && c.Name != r.Connection {
			continue
		}
		cs := &controlpb.ConnectionStatus{Name: c.Name}
		for _, a := range c.LocalAddrs {
			cs.LocalAddrs = append(cs.LocalAddrs, a.String())
		}
		for _, a := range c.RemoteAddrs {
			cs.RemoteAddrs = append(cs.RemoteAddrs, a.String())
		}
		for _, ch := range c.Children {
			cs.Children = append(cs.Children, ch.Name+" ("+ch.Mode.String()+", "+ts.FormatList(ch.LocalTS)+" === "+ts.FormatList(ch.RemoteTS)+")")
		}
		for _, sa := range sas {
			if sa.Name == c.Name {
				cs.IkeSas++
				cs.ChildSas += int32(len(sa.Children))
			}
		}
		st := d.eng.Status(c.Name)
		cs.LastFailure = st.LastFailure
		if !st.LastFailureAt.IsZero() {
			cs.LastFailureAt = st.LastFailureAt.UTC().Format(time.RFC3339)
		}
		rep.Connections = append(rep.Connections, cs)
	}
	if r.Connection != "" && len(rep.Connections) == 0 {
		return nil, status.Errorf(codes.NotFound, "no connection %q", r.Connection)
	}
	return rep, nil
}

func (s *controlServer) ListSAs(ctx context.Context, r *controlpb.ListSAsRequest) (*controlpb.ListSAsReply, error) {
	rep := &controlpb.ListSAsReply{}
	for _, sa := range s.d.snapshot() {
		if r.Connection == "" || sa.Name == r.Connection {
			rep.IkeSas = append(rep.IkeSas, sa)
		}
	}
	return rep, nil
}

func (s *controlServer) Initiate(ctx context.Context, r *controlpb.InitiateRequest) (*controlpb.ActionReply, error) {
	if err := s.d.eng.Initiate(ctx, r.Connection, r.Child); err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	what := r.Connection
	if r.Child != "" {
		what += "/" + r.Child
	}
	return &controlpb.ActionReply{Message: what + " established"}, nil
}

func (s *controlServer) Terminate(ctx context.Context, r *controlpb.TerminateRequest) (*controlpb.ActionReply, error) {
	if err := s.d.eng.Terminate(ctx, r.Connection); err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	return &controlpb.ActionReply{Message: r.Connection + " terminated"}, nil
}

func (s *controlServer) Rekey(ctx context.Context, r *controlpb.RekeyRequest) (*controlpb.ActionReply, error) {
	if err := s.d.eng.Rekey(ctx, r.Connection, r.Child); err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	what := r.Connection
	if r.Child != "" {
		what += "/" + r.Child
	}
	return &controlpb.ActionReply{Message: what + " rekeyed"}, nil
}

func (s *controlServer) Reload(ctx context.Context, r *controlpb.ReloadRequest) (*controlpb.ActionReply, error) {
	msg, err := s.d.reload()
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "reload refused, the running configuration stays:\n"+msg)
	}
	return &controlpb.ActionReply{Message: msg}, nil
}

func (s *controlServer) ListPlugins(ctx context.Context, r *controlpb.ListPluginsRequest) (*controlpb.ListPluginsReply, error) {
	rep := &controlpb.ListPluginsReply{}
	for _, p := range s.d.host.List() {
		rep.Plugins = append(rep.Plugins, &controlpb.Plugin{Kind: p.Kind, Name: p.Name, Path: p.Path,
			State: p.State, Restarts: int32(p.Restarts), Version: p.Version})
	}
	return rep, nil
}

func (s *controlServer) Events(r *controlpb.EventsRequest, stream controlpb.Control_EventsServer) error {
	ch, cancel := s.d.eng.Subscribe()
	defer cancel()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case ev, ok := <-ch:
			if !ok {
				return nil
			}
			if err := stream.Send(&controlpb.Event{Time: time.Now().UTC().Format(time.RFC3339Nano),
				Kind: ev.Kind.String(), Connection: ev.Conn, Child: ev.Child, Message: ev.Reason}); err != nil {
				return err
			}
		}
	}
}
