// Command embedgate is Caddy with the standard modules and the embed_session
// handler built in. It behaves as the caddy command does (run, validate,
// adapt, list-modules, reload, ...).
package main

import (
	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules, as in the official caddy binary.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// The embed_session handler, directive and subcommands.
	_ "github.com/embedgate/embedgate/caddymodule"
)

func main() {
	// Help and usage text say "embedgate", not "caddy".
	caddy.CustomBinaryName = "embedgate"
	caddycmd.Main()
}
