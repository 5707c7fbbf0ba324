// Command nova-container-agent replaces nova-compute on a container host.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	for _, a := range os.Args[1:] {
		if a == "--version" {
			fmt.Println(version)
			return
		}
	}
	fmt.Fprintln(os.Stderr, "usage: nova-container-agent --config-file FILE [--config-file FILE...]")
	os.Exit(2)
}
