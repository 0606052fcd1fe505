// Command printversion prints version.Version, for the ldflags test.
package main

import (
	"fmt"

	"github.com/floe-cri/floe/internal/version"
)

func main() { fmt.Print(version.Version) }
