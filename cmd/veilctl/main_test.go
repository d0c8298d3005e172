package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-ipsec/veil/core/control"
	"github.com/veil-ipsec/veil/core/control/controlpb"
)

type fakeDaemon struct {
	controlpb.UnimplementedControlServer
	initiated []string
}

func (f *fakeDaemon) ListSAs(context.Context, *controlpb.ListSAsRequest) (*controlpb.ListSAsReply, error) {
	return &controlpb.ListSAsReply{IkeSas: []*controlpb.IKESA{{
		Name: "db", State: "ESTABLISHED", Local: "10.0.0.1", Remote: "10.0.0.2", Initiator: true,
		SpiI: "0102030405060708", SpiR: "1112131415161718", Proposal: "aes256gcm16-prfsha384-x25519",
		EstablishedAt: "2026-11-28T14:00:00Z",
		Children: []*controlpb.ChildSA{{Name: "pg", State: "INSTALLED", Mode: "transport",
			Proposal: "aes256gcm16", SpiIn: "c0000001", SpiOut: "c0000002",
			LocalTs: []string{"10.0.0.1/32[tcp/5432]"}, BytesIn: 10, PacketsOut: 3}},
	}}}, nil
}

func (f *fakeDaemon) ListPlugins(context.Context, *controlpb.ListPluginsRequest) (*controlpb.ListPluginsReply, error) {
	return &controlpb.ListPluginsReply{Plugins: []*controlpb.Plugin{
		{Kind: "dataplane", Name: "userspace", State: "running", Restarts: 1, Version: "0.11.0"},
		{Kind: "keystore", Name: "env", State: "running", Version: "0.1.0", Path: "/usr/libexec/veil/keystore-env"},
	}}, nil
}

func (f *fakeDaemon) Initiate(_ context.Context, r *controlpb.InitiateRequest) (*controlpb.ActionReply, error) {
	f.initiated = append(f.initiated, r.Connection+"/"+r.Child)
	return &controlpb.ActionReply{Message: "initiated " + r.Connection}, nil
}

func serve(t *testing.T) (string, *fakeDaemon) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "veil.sock")
	l, err := control.Listen(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDaemon{}
	s := control.NewServer(f)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return sock, f
}

func TestSAsJSONShape(t *testing.T) {
	sock, _ := serve(t)
	var out, errb bytes.Buffer
	if rc := run([]string{"--socket", sock, "sas", "--json"}, &out, &errb); rc != 0 {
		t.Fatalf("rc=%d stderr=%s", rc, errb.String())
	}
	// Decode generically: the key names are the contract.
	var doc map[string][]map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	sa := doc["ike_sas"][0]
	for _, k := range []string{"name", "state", "local", "remote", "initiator", "spi_i", "spi_r", "proposal", "established_at", "children"} {
		if _, ok := sa[k]; !ok {
			t.Errorf("ike_sas[0] lacks %q", k)
		}
	}
	if sa["state"] != "ESTABLISHED" || sa["initiator"] != true {
		t.Errorf("state/initiator = %v/%v", sa["state"], sa["initiator"])
	}
	child := sa["children"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "state", "mode", "proposal", "spi_in", "spi_out", "local_ts", "remote_ts", "bytes_in", "bytes_out", "packets_in", "packets_out"} {
		if _, ok := child[k]; !ok {
			t.Errorf("child lacks %q", k)
		}
	}
	if child["state"] != "INSTALLED" || child["bytes_in"] != float64(10) {
		t.Errorf("child = %v", child)
	}
	if rt, ok := child["remote_ts"].([]any); !ok || len(rt) != 0 {
		t.Errorf("remote_ts should be an empty list, got %v", child["remote_ts"])
	}
}

func TestPluginsJSONShape(t *testing.T) {
	sock, _ := serve(t)
	var out, errb bytes.Buffer
	if rc := run([]string{"--socket", sock, "plugins", "--json"}, &out, &errb); rc != 0 {
		t.Fatalf("rc=%d stderr=%s", rc, errb.String())
	}
	var doc map[string][]map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	ps := doc["plugins"]
	if len(ps) != 2 {
		t.Fatalf("plugins: %v", doc)
	}
	for _, k := range []string{"kind", "name", "state", "restarts", "version", "path"} {
		if _, ok := ps[0][k]; !ok {
			t.Errorf("plugins[0] lacks %q", k)
		}
	}
	if ps[0]["restarts"] != float64(1) || ps[0]["path"] != "" || ps[1]["path"] != "/usr/libexec/veil/keystore-env" || ps[1]["version"] != "0.1.0" {
		t.Errorf("plugins = %v", ps)
	}
	if rc := run([]string{"--socket", sock, "plugins", "--yaml"}, &out, &errb); rc == 0 {
		t.Error("plugins --yaml accepted")
	}
}

func TestInitiateSplitsChild(t *testing.T) {
	sock, f := serve(t)
	var out, errb bytes.Buffer
	if rc := run([]string{"--socket", sock, "initiate", "db/pg"}, &out, &errb); rc != 0 {
		t.Fatalf("rc=%d stderr=%s", rc, errb.String())
	}
	if len(f.initiated) != 1 || f.initiated[0] != "db/pg" {
		t.Errorf("initiated %v", f.initiated)
	}
}

func TestErrors(t *testing.T) {
	sock, _ := serve(t)
	var out, errb bytes.Buffer
	if rc := run([]string{"--socket", sock, "frobnicate"}, &out, &errb); rc != 2 {
		t.Errorf("unknown command rc=%d", rc)
	}
	errb.Reset()
	// Unimplemented on the fake: the daemon's message reaches the operator.
	if rc := run([]string{"--socket", sock, "reload"}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "Reload") {
		t.Errorf("rc=%d stderr=%q", rc, errb.String())
	}
	errb.Reset()
	if rc := run([]string{"--socket", filepath.Join(t.TempDir(), "none.sock"), "status"}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "is veild running") {
		t.Errorf("rc=%d stderr=%q", rc, errb.String())
	}
}
