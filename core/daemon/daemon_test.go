package daemon

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/veil-ipsec/veil/config"
)

func TestSDNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	if err := sdNotify("READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if err := sdNotify("READY=1"); err != nil {
		t.Errorf("without systemd: %v", err)
	}
}

func TestParseIdentity(t *testing.T) {
	for _, tc := range []struct {
		in   string
		typ  uint8
		data string
	}{
		{"10.0.0.1", idIPv4, "\x0a\x00\x00\x01"},
		{"db1.example.com", idFQDN, "db1.example.com"},
		{"@db1.example.com", idFQDN, "db1.example.com"},
		{"alice@example.com", idRFC822, "alice@example.com"},
		{"@#0102ff", idKeyID, "\x01\x02\xff"},
	} {
		id, err := parseIdentity(tc.in)
		if err != nil || id.Type != tc.typ || string(id.Data) != tc.data {
			t.Errorf("%s: %+v %v", tc.in, id, err)
		}
	}
	if id, _ := parseIdentity("::1"); id.Type != idIPv6 || len(id.Data) != 16 {
		t.Errorf("::1: %+v", id)
	}
}

func TestPSKSecretsFromConnections(t *testing.T) {
	cfg, diags := config.Parse([]byte(`
connection "a" {
  remote_addrs = ["10.0.0.2"]
  local  {
    auth = "psk"
    id   = "me.example"
    psk  = "file:/etc/veil/a.psk"
  }
  remote {
    auth = "psk"
    id   = "peer.example"
    psk  = "file:/etc/veil/a.psk"
  }
  child "c" {}
}
connection "b" {
  remote_addrs = ["10.0.0.3"]
  local  {
    auth = "psk"
    psk  = "file:/etc/veil/b.psk"
  }
  remote {
    auth = "psk"
    id   = "10.0.0.3"
    psk  = "file:/etc/veil/b.psk"
  }
  child "c" {}
}
`), "t.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	got := pskSecrets(cfg)
	if got["peer.example"] != "file:/etc/veil/a.psk" || got["10.0.0.3"] != "file:/etc/veil/b.psk" || len(got) != 2 {
		t.Errorf("secrets %v", got)
	}
	v := pskValue(cfg)
	if !v.GetAttr("secrets").Type().IsMapType() || v.GetAttr("secrets").LengthInt() != 2 {
		t.Errorf("plugin value %#v", v)
	}
}
