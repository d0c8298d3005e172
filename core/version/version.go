// Package version holds the build's version string, set by the Makefile.
package version

// Version is overwritten at link time (-X); "dev" marks an unversioned build.
var Version = "dev"
