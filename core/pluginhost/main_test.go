package pluginhost

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/veil-ipsec/veil/plugins/auth/psk"
	"github.com/veil-ipsec/veil/plugins/keystore/file"
)

// testBuiltins are the bundled plugins of the test binary, which the host
// re-executes as "<test binary> plugin <kind> <name>" exactly as veild.
var testBuiltins = Builtins{
	"auth/psk":      func() any { return psk.New() },
	"keystore/file": func() any { return file.New() },
}

// Paths of helper binaries built once by TestMain.
var (
	testPluginBin string // internal/testplugin
	examplePlugin string // examples/plugins/keystore-env
)

func TestMain(m *testing.M) {
	if len(os.Args) == 4 && os.Args[1] == "plugin" {
		if err := ServeBuiltin(os.Args[2], os.Args[3], testBuiltins); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("VEIL_ECHO_FLOOR") != "" {
		echoFloor()
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pluginhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testPluginBin = filepath.Join(dir, "testplugin")
	examplePlugin = filepath.Join(dir, "keystore-env")
	for out, pkg := range map[string]string{
		testPluginBin: "github.com/veil-ipsec/veil/core/pluginhost/internal/testplugin",
		examplePlugin: "github.com/veil-ipsec/veil/examples/plugins/keystore-env",
	} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", pkg, err)
			return 1
		}
	}
	return m.Run()
}
