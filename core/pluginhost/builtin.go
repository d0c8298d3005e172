package pluginhost

import (
	"fmt"
	"sort"
	"strings"

	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/dataplane"
	"github.com/veil-ipsec/veil/sdk/keystore"
)

// Builtins maps "kind/name" ("auth/psk", "keystore/file") to a constructor
// of a bundled plugin: an auth.Authenticator, keystore.Store or
// dataplane.Dataplane.
type Builtins map[string]func() any

// ServeBuiltin runs bundled plugin kind/name in this process, as the child
// the host started with "veild plugin <kind> <name>". It returns only on a
// bad kind or name (go-plugin exits the process when the host is done).
func ServeBuiltin(kind, name string, builtins Builtins) error {
	newImpl, ok := builtins[kind+"/"+name]
	if !ok {
		names := make([]string, 0, len(builtins))
		for k := range builtins {
			names = append(names, k)
		}
		sort.Strings(names)
		return fmt.Errorf("no bundled plugin %s/%s (bundled: %s)", kind, name, strings.Join(names, ", "))
	}
	impl := newImpl()
	switch kind {
	case base.KindAuth:
		a, ok := impl.(auth.Authenticator)
		if !ok {
			return fmt.Errorf("bundled plugin %s/%s is a %T, not an auth.Authenticator", kind, name, impl)
		}
		auth.Serve(a)
	case base.KindKeystore:
		s, ok := impl.(keystore.Store)
		if !ok {
			return fmt.Errorf("bundled plugin %s/%s is a %T, not a keystore.Store", kind, name, impl)
		}
		keystore.Serve(s)
	case base.KindDataplane:
		d, ok := impl.(dataplane.Dataplane)
		if !ok {
			return fmt.Errorf("bundled plugin %s/%s is a %T, not a dataplane.Dataplane", kind, name, impl)
		}
		dataplane.Serve(d)
	default:
		return fmt.Errorf("unknown plugin kind %q (auth, keystore or dataplane)", kind)
	}
	return nil
}
