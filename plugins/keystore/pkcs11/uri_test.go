package pkcs11

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	u, err := ParseURI("pkcs11:token=My%20Token;serial=0a1b;slot-id=7;object=db1;id=%01%A2z;type=private;manufacturer=SoftHSM%20project")
	if err != nil {
		t.Fatal(err)
	}
	if u.Token != "My Token" || u.Serial != "0a1b" || !u.HasSlotID || u.SlotID != 7 || u.Object != "db1" ||
		!u.HasID || !bytes.Equal(u.ID, []byte{1, 0xa2, 'z'}) || u.Type != "private" || u.Manufacturer != "SoftHSM project" {
		t.Errorf("ParseURI = %+v", u)
	}
	// RFC 7512's own example characters that need no escaping.
	if u, err := ParseURI("pkcs11:object=a:b[c]@d!$'()*+,=&e~f"); err != nil || u.Object != "a:b[c]@d!$'()*+,=&e~f" {
		t.Errorf("ParseURI(reserved characters) = %+v, %v", u, err)
	}
	for ref, want := range map[string]string{
		"pkcs11:object=a/b":                  "must be percent-encoded",
		"pkcs11:object=a%2":                  "two hex digits",
		"pkcs11:object=":                     "is empty",
		"pkcs11:id=%01;id=%02":               "appears twice",
		"pkcs11:object=a?pin-source=file:/x": "PIN does not belong",
		"pkcs11:object=a?foo=bar":            `unknown query attribute "foo"`,
		"pkcs11:type=private":                "names no object",
		"PKCS11:object=a":                    "not a pkcs11: reference",
		"pkcs11:object=a;slot-id=-1":         "not a decimal number",
	} {
		_, err := ParseURI(ref)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseURI(%q) = %v; want an error with %q", ref, err, want)
		}
	}
}

// FuzzParseURI: no input panics, and what parses names an object.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{"pkcs11:token=veil;object=db1;type=private", "pkcs11:id=%01%02", "pkcs11:object=a?pin-value=1", "pkcs11:%", "pkcs11:;;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err == nil && u.Object == "" && !u.HasID {
			t.Errorf("ParseURI(%q) names no object", s)
		}
		if err != nil && strings.Contains(s, "?") && strings.Contains(err.Error(), s[strings.Index(s, "?"):]) && len(s)-strings.Index(s, "?") > 8 {
			t.Errorf("error %q repeats the query of %q", err, s)
		}
	})
}
