package pkcs11

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Prefix of the references this store resolves.
const Prefix = "pkcs11:"

// URI is a parsed RFC 7512 reference. Empty fields were not given.
type URI struct {
	// Token selection.
	Token, Manufacturer, Serial, Model      string
	SlotDescription, SlotManufacturer       string
	LibraryManufacturer, LibraryDescription string
	LibraryVersion                          string
	SlotID                                  uint
	HasSlotID                               bool
	// Object selection.
	Object string // CKA_LABEL
	ID     []byte // CKA_ID
	HasID  bool
	Type   string // private, public, cert, secret-key, data
}

// pathAttrs are the RFC 7512 path attributes and where they go.
var pathAttrs = map[string]func(u *URI, v string) error{
	"token":                func(u *URI, v string) error { u.Token = v; return nil },
	"manufacturer":         func(u *URI, v string) error { u.Manufacturer = v; return nil },
	"serial":               func(u *URI, v string) error { u.Serial = v; return nil },
	"model":                func(u *URI, v string) error { u.Model = v; return nil },
	"slot-description":     func(u *URI, v string) error { u.SlotDescription = v; return nil },
	"slot-manufacturer":    func(u *URI, v string) error { u.SlotManufacturer = v; return nil },
	"library-manufacturer": func(u *URI, v string) error { u.LibraryManufacturer = v; return nil },
	"library-description":  func(u *URI, v string) error { u.LibraryDescription = v; return nil },
	"library-version":      func(u *URI, v string) error { u.LibraryVersion = v; return nil },
	"object":               func(u *URI, v string) error { u.Object = v; return nil },
	"id":                   func(u *URI, v string) error { u.ID, u.HasID = []byte(v), true; return nil },
	"slot-id": func(u *URI, v string) error {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return fmt.Errorf("slot-id %q is not a decimal number", v)
		}
		u.SlotID, u.HasSlotID = uint(n), true
		return nil
	},
	"type": func(u *URI, v string) error {
		switch v {
		case "private", "public", "cert", "secret-key", "data":
			u.Type = v
			return nil
		}
		return fmt.Errorf("type %q is not private, public, cert, secret-key or data", v)
	},
}

// ParseURI parses a "pkcs11:" reference strictly: known attributes once
// each, values percent-encoded where RFC 7512 requires it, no PIN or module
// in the query (the plugin's config names those).
func ParseURI(ref string) (*URI, error) {
	rest, ok := strings.CutPrefix(ref, Prefix)
	if !ok {
		return nil, errors.New("not a pkcs11: reference")
	}
	path, query, hasQuery := strings.Cut(rest, "?")
	if path == "" {
		return nil, errors.New("no attributes (RFC 7512: pkcs11:token=NAME;object=LABEL;type=private)")
	}
	if hasQuery {
		for _, kv := range strings.Split(query, "&") {
			k, _, _ := strings.Cut(kv, "=")
			switch k {
			case "pin-value", "pin-source":
				return nil, errors.New("the PIN does not belong in the reference: the plugin's pin_file names the file that holds it")
			case "module-name", "module-path":
				return nil, errors.New("the module does not belong in the reference: the plugin's module attribute names it")
			default:
				return nil, fmt.Errorf("unknown query attribute %q", k)
			}
		}
	}
	u := &URI{}
	seen := map[string]bool{}
	for _, kv := range strings.Split(path, ";") {
		k, raw, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not attribute=value", kv)
		}
		set, known := pathAttrs[k]
		if !known {
			return nil, fmt.Errorf("unknown or unsupported attribute %q", k)
		}
		if seen[k] {
			return nil, fmt.Errorf("attribute %q appears twice", k)
		}
		seen[k] = true
		v, err := unescape(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		if v == "" {
			return nil, fmt.Errorf("attribute %q is empty", k)
		}
		if err := set(u, v); err != nil {
			return nil, err
		}
	}
	if u.Object == "" && !u.HasID {
		return nil, errors.New("names no object: add object=LABEL or id=%XX")
	}
	return u, nil
}

// unescape decodes %XX escapes and refuses characters RFC 7512 wants
// escaped in a path value (anything but unreserved and p11-res-avail).
func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", errors.New("% must be followed by two hex digits")
			}
			n, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(n))
			i += 2
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			strings.IndexByte("-._~:[]@!$'()*+,=&", c) >= 0:
			b.WriteByte(c)
		default:
			return "", fmt.Errorf("character %q must be percent-encoded (%%%02X)", c, c)
		}
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// redact is how a reference appears in errors: without its query, which
// could hold a PIN.
func redact(ref string) string {
	path, _, _ := strings.Cut(ref, "?")
	return path
}
