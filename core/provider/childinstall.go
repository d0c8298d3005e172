package provider

import "context"

// ChildInstaller may be implemented by a Dataplane that installs a Child
// SA's SAs and policies in one call (a plugin: one round trip instead of
// one per SA and policy). It installs the SAs, then the policies, each in
// order, and installs all or, on an error, none. The engine uses it when
// the dataplane has it and InstallSA/InstallPolicy otherwise.
type ChildInstaller interface {
	InstallChild(ctx context.Context, sas []*ChildSA, policies []*Policy) error
}
