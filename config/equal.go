package config

import (
	"reflect"

	"github.com/hashicorp/hcl/v2"
)

// Equal reports whether c and other configure the same IKE SA and Child
// SAs, ignoring where in the files they are written. Reload keeps the SAs
// of connections that are Equal to their previous version.
func (c *Connection) Equal(other *Connection) bool {
	if c == nil || other == nil {
		return c == other
	}
	return reflect.DeepEqual(c.withoutRanges(), other.withoutRanges())
}

func (c *Connection) withoutRanges() Connection {
	x := *c
	x.Range = hcl.Range{}
	x.Local.Range = hcl.Range{}
	x.Remote.Range = hcl.Range{}
	x.Children = make([]Child, len(c.Children))
	for i, ch := range c.Children {
		ch.Range = hcl.Range{}
		x.Children[i] = ch
	}
	return x
}
