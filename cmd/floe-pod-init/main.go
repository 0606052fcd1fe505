// Command floe-pod-init is the init process of pods that share one PID
// namespace (see internal/podinit). floe runs it when it is installed next
// to the floe binary: it links only the standard library and x/sys, so each
// such pod costs about a megabyte of resident memory instead of the tens
// the whole floe binary takes once every package has initialised. Without
// it floe re-executes itself as the init. It is the launcher too, because
// starting it takes about a millisecond where the whole floe binary takes
// tens of milliseconds to initialise.
package main

import (
	"fmt"
	"os"

	"github.com/floe-cri/floe/internal/podinit"
)

func main() {
	// floe runs this program both as the launcher (which clones the init
	// into its new namespaces and exits) and as the init itself.
	if !podinit.IsHelper(os.Args) {
		fmt.Fprintln(os.Stderr, "floe-pod-init is started by floe; it is not meant to be run by hand")
		os.Exit(2)
	}
	podinit.Main()
}
