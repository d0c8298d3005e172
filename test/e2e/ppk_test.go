package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func writePPK(t *testing.T, name, key string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func ppkAttrs(id, file string, required bool) string {
	req := "false"
	if required {
		req = "true"
	}
	return `ppk_id = "` + id + `"
  ppk = "file:` + file + `"
  ppk_required = ` + req
}

// ppkInUse reads the ppk field of the daemon's first IKE SA.
func ppkInUse(t *testing.T, d *daemon) bool {
	var l struct {
		IKESAs []struct {
			PPK bool `json:"ppk"`
		} `json:"ike_sas"`
	}
	if err := json.Unmarshal([]byte(d.ctl("sas", "--json")), &l); err != nil || len(l.IKESAs) == 0 {
		t.Fatalf("sas: %v %+v", err, l)
	}
	return l.IKESAs[0].PPK
}

// Two veild with the same post-quantum preshared key (ppk_required on
// both): the IKE SA's keys are mixed with it, traffic flows.
func TestPPKBetweenDaemons(t *testing.T) {
	p := newDirectPair(t)
	key := writePPK(t, "pq.key", "a post-quantum preshared key of 32+ bytes\n")
	p.ca.Extra = ppkAttrs("pq-lab", key, true)
	p.cb.Extra = ppkAttrs("pq-lab", key, true)
	p.start(t)
	p.da.waitEstablished()
	p.db.waitEstablished()
	if !ppkInUse(t, p.da) || !ppkInUse(t, p.db) {
		t.Fatal("veilctl sas does not report the PPK in use")
	}
	ping(t, p.a, p.bAddr)
}

// A responder that requires a PPK the initiator does not have refuses it
// and says why.
func TestPPKRequiredRefused(t *testing.T) {
	p := newDirectPair(t)
	key := writePPK(t, "pq.key", "a post-quantum preshared key of 32+ bytes\n")
	p.ca.Extra = ppkAttrs("pq-other", writePPK(t, "other.key", "another key, not the gateway's one\n"), false)
	p.cb.Extra = ppkAttrs("pq-lab", key, true)
	p.start(t)
	waitStatus(t, p.db, "b's PPK refusal", "ppk_id", "pq-other", "required")
	waitStatus(t, p.da, "a's auth failure", "authentication_failed")
}
