package daemon

import (
	"github.com/veil-ipsec/veil/config"
	"github.com/zclconf/go-cty/cty"
)

// userspaceValue adds to the userspace dataplane's configuration where
// veild's NAT-T sockets are, so the dataplane can join their SO_REUSEPORT
// group and receive ESP-in-UDP on the same port (core/transport share.go):
// nat_t_port and nat_t_addrs (empty: the wildcards).
func userspaceValue(cfg *config.Config, v cty.Value) cty.Value {
	attrs := map[string]cty.Value{}
	if v != cty.NilVal && !v.IsNull() && v.Type().IsObjectType() {
		for k, x := range v.AsValueMap() {
			attrs[k] = x
		}
	}
	port := cfg.Daemon.NATTPort
	if port == 0 {
		port = 4500
	}
	attrs["nat_t_port"] = cty.NumberIntVal(int64(port))
	addrs := make([]cty.Value, 0, len(cfg.Daemon.Listen))
	for _, a := range cfg.Daemon.Listen {
		addrs = append(addrs, cty.StringVal(a.String()))
	}
	if len(addrs) == 0 {
		attrs["nat_t_addrs"] = cty.ListValEmpty(cty.String)
	} else {
		attrs["nat_t_addrs"] = cty.ListVal(addrs)
	}
	return cty.ObjectVal(attrs)
}
