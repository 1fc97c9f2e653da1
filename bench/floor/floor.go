// Package floor is a bench-only handler, bench_floor, that changes a
// proxied request and its answer exactly as embed_session does for a valid
// session (the session cookie removed, the
// two identity headers set, one Content-Security-Policy), with none of its
// checks. bench/run.sh runs it (bench/floor/cmd) with FLOOR=1 in place of
// embed_session, and BenchmarkChainPaired beside it: its cost over plain is
// what that wire costs Caddy (its proxy copies, logs and writes the extra
// headers), which no implementation of the gateway can avoid; the rest of
// embed_session's cost is its own work.
package floor

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Floor{})
	httpcaddyfile.RegisterHandlerDirective("bench_floor", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		h.Next()
		return Floor{}, nil
	})
	httpcaddyfile.RegisterDirectiveOrder("bench_floor", httpcaddyfile.Before, "reverse_proxy")
}

// Floor is the bench_floor handler.
type Floor struct{}

// CaddyModule returns the module information.
func (Floor) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.bench_floor", New: func() caddy.Module { return new(Floor) }}
}

// UnmarshalCaddyfile takes no arguments.
func (Floor) UnmarshalCaddyfile(d *caddyfile.Dispenser) error { return nil }

func (Floor) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	delete(r.Header, "Cookie")
	r.Header["X-Embed-Tenant"] = []string{"bench"}
	r.Header["X-Embed-Subject"] = []string{"user-0@bench.test"}
	w.Header()["Content-Security-Policy"] = []string{"frame-ancestors https://app.bench.test"}
	return next.ServeHTTP(w, r)
}

var (
	_ caddyhttp.MiddlewareHandler = (*Floor)(nil)
	_ caddyfile.Unmarshaler       = (*Floor)(nil)
)
