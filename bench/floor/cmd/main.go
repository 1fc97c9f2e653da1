// Command floor is the embedgate binary plus bench/floor's bench_floor
// handler, for bench/run.sh (FLOOR=1, BASE=floor).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/embedgate/embedgate/bench/floor"
	_ "github.com/embedgate/embedgate/caddymodule"
)

func main() { caddycmd.Main() }
