// Command veild is the Veil IKEv2/IPsec daemon.
//
//	veild --config PATH        run in the foreground (file or directory of *.hcl)
//	veild validate PATH        check a configuration; non-zero exit with diagnostics
//	veild --version
//	veild plugin KIND NAME     serve a bundled plugin (started by veild itself)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/veil-ipsec/veil/config"
	"github.com/veil-ipsec/veil/core/daemon"
	"github.com/veil-ipsec/veil/core/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "validate":
			if len(args) != 2 {
				fmt.Fprintln(stderr, "usage: veild validate PATH")
				return 2
			}
			return validate(args[1], stdout, stderr)
		case "plugin":
			if len(args) != 3 {
				fmt.Fprintln(stderr, "usage: veild plugin KIND NAME")
				return 2
			}
			if err := servePlugin(args[1], args[2]); err != nil {
				fmt.Fprintln(stderr, "veild plugin:", err)
				return 1
			}
			return 0
		}
	}
	fs := flag.NewFlagSet("veild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "/etc/veil", "configuration file or directory of *.hcl files")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "veild", version.Version)
		return 0
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "veild: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, daemon.Options{ConfigPath: *cfgPath, Stderr: stderr, Plugins: builtinPlugins}); err != nil {
		fmt.Fprintln(stderr, "veild:", err)
		return 1
	}
	return 0
}

func validate(path string, stdout, stderr io.Writer) int {
	cfg, diags := config.LoadFile(path)
	if len(diags) > 0 {
		cfg.WriteDiagnostics(stderr, diags)
	}
	if diags.HasErrors() {
		fmt.Fprintf(stderr, "%s: configuration has %d error(s)\n", path, countErrors(diags))
		return 1
	}
	fmt.Fprintf(stdout, "%s: configuration OK (%d connection(s))\n", path, len(cfg.Connections))
	return 0
}
