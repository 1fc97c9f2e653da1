// Command embedgate is Caddy with the standard modules and the embed_session
// handler built in. It behaves as the caddy command does (run, validate,
// adapt, list-modules, reload, ...).
package main

import (
	"os"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules, as in the official caddy binary.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// The embed_session handler, directive and subcommands.
	_ "github.com/embedgate/embedgate/caddymodule"
)

func main() {
	os.Args = append(os.Args[:1], helpAndVersionArgs(os.Args[1:])...)
	caddycmd.Main()
}

// helpAndVersionArgs turns the help and version flags into the help and
// version commands ("embedgate", "embedgate --help", "embedgate run -h",
// "embedgate --version"): cobra answers the flags before it runs the
// initializer that brand.go uses, the commands after it.
func helpAndVersionArgs(args []string) []string {
	switch {
	case len(args) == 0:
		return []string{"help"}
	case len(args) == 1 && (args[0] == "--version" || args[0] == "-v"):
		return []string{"version"}
	}
	last := args[len(args)-1]
	if last != "--help" && last != "-h" {
		return args
	}
	for _, a := range args[:len(args)-1] {
		if strings.HasPrefix(a, "-") {
			return args // flags before --help: leave it to cobra
		}
	}
	return append([]string{"help"}, args[:len(args)-1]...)
}
