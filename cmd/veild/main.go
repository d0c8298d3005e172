// Command veild is the Veil IKEv2/IPsec daemon.
package main

import (
	"fmt"
	"os"

	"github.com/veil-ipsec/veil/core/version"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "version") {
		fmt.Println("veild", version.Version)
		return
	}
	fmt.Fprintln(os.Stderr, "usage: veild --config PATH | veild validate PATH | veild --version")
	os.Exit(2)
}
