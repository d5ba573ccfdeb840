// Command hub is Flotilla's control plane (`hub serve`) and the operator's
// CLI for it (`hub apply`, `hub get`, ...).
package main

import (
	"fmt"
	"os"

	"github.com/flotilla-edge/flotilla/hub/internal/cli"
)

// Set at build time with -ldflags "-X main.version=… -X main.commit=… -X main.date=…".
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

func main() {
	cmd := cli.NewRootCommand(cli.BuildInfo{Version: version, Commit: commit, Date: date})
	if err := cmd.Execute(); err != nil {
		if !cli.IsSilent(err) {
			fmt.Fprintln(os.Stderr, cli.ErrorText(err))
		}
		os.Exit(cli.ExitCode(err))
	}
}
