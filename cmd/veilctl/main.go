// Command veilctl is the operator's CLI over veild's control socket.
package main

import (
	"fmt"
	"os"

	"github.com/veil-ipsec/veil/core/version"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "version") {
		fmt.Println("veilctl", version.Version)
		return
	}
	fmt.Fprintln(os.Stderr, "usage: veilctl [--socket PATH] status|sas|initiate|terminate|rekey|reload|plugins|events")
	os.Exit(2)
}
