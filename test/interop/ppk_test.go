package interop

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Post-quantum preshared keys (RFC 8784) against strongSwan 5.9 (ppk_id,
// ppk_required in swanctl.conf): the same PPK on both sides mixes the
// IKE SA's keys (and with them the child's), whoever initiates; a charon
// with another PPK and neither side requiring one falls back to
// NO_PPK_AUTH.

const ppkSecret = "interop post-quantum preshared key 0123456789"

// ppkLab starts a lab in which neither side initiates until the PPK is
// loaded into charon; veilPPK and charonPPK are the PPK_IDs each side
// has a key for, required says whether both insist. charonConn says
// whether charon's connection names its PPK (ppk_id).
func ppkLab(t *testing.T, veilPPK, charonPPK string, required, charonConn bool) *lab {
	key := filepath.Join(t.TempDir(), "pq.key")
	if err := os.WriteFile(key, []byte(ppkSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	req, yes := "false", "no"
	if required {
		req, yes = "true", "yes"
	}
	charonExtra := "ppk_required = " + yes
	if charonConn {
		charonExtra += "\n    ppk_id = " + charonPPK
	}
	l := newLab(t, setup{Mode: "tunnel", IKEProposal: "aes256gcm16-prfsha256-x25519", ESPProposal: "aes256gcm16",
		VeilExtra:   "ppk_id = \"" + veilPPK + "\"\n  ppk = \"file:" + key + "\"\n  ppk_required = " + req,
		CharonExtra: charonExtra})
	// charon's secrets: the harness's PSK and the PPK, loaded together
	// (swanctl --load-creds replaces the set).
	creds := filepath.Join(l.charon.dir, "ppk.conf")
	conf := "secrets {\n  ike-interop {\n    id-veil = " + veilID + "\n    id-charon = " + charonID + "\n    secret = \"" + psk +
		"\"\n  }\n  ppk-interop {\n    id = " + charonPPK + "\n    secret = \"" + ppkSecret + "\"\n  }\n}\n"
	if err := os.WriteFile(creds, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	l.charon.swanctl("--load-creds", "--noprompt", "--file", creds)
	return l
}

func (l *lab) veilPPK() bool {
	l.t.Helper()
	var s struct {
		IKESAs []struct {
			PPK bool `json:"ppk"`
		} `json:"ike_sas"`
	}
	if err := json.Unmarshal([]byte(l.veil.ctl("sas", "--json")), &s); err != nil || len(s.IKESAs) != 1 {
		l.t.Fatalf("veilctl sas: %v %+v", err, s)
	}
	return s.IKESAs[0].PPK
}

func TestPPKWithCharon(t *testing.T) {
	for _, veilStarts := range []bool{true, false} {
		name := "charon-initiated"
		if veilStarts {
			name = "veil-initiated"
		}
		t.Run(name, func(t *testing.T) {
			l := ppkLab(t, "pq-interop", "pq-interop", true, true)
			if veilStarts {
				l.veil.ctl("initiate", "interop")
			} else {
				l.charonInitiate()
			}
			l.waitPaired("IKE SA with PPK established on both sides", nil)
			if !l.veilPPK() {
				t.Error("veil does not report the PPK in use")
			}
			if log := l.charon.log(); !strings.Contains(log, "using PPK for PPK_ID 'pq-interop'") {
				t.Errorf("charon did not use the PPK:\n%s", log)
			}
			// The child's keys come from the PPK-mixed SK_d on both sides.
			l.ping()
		})
	}
}

// veil offers PPK "pq-veil", charon only has a key for "pq-other" (and no
// ppk_id: with one that differs it refuses outright): with neither
// requiring a PPK, charon verifies veil's NO_PPK_AUTH and both go on
// without.
func TestPPKFallbackWithCharon(t *testing.T) {
	l := ppkLab(t, "pq-veil", "pq-other", false, false)
	l.veil.ctl("initiate", "interop")
	l.waitPaired("IKE SA without PPK established on both sides", nil)
	if l.veilPPK() {
		t.Error("veil reports a PPK it could not have agreed on")
	}
	if log := l.charon.log(); strings.Contains(log, "using PPK") {
		t.Errorf("charon says it used a PPK:\n%s", log)
	}
	l.ping()
}
