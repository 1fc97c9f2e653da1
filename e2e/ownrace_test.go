package e2e

import "testing"

// A race is the gateway's when one of the two racing accesses runs its
// code, whoever created the goroutines.
func TestOwnRaceLooksAtTheAccessesOnly(t *testing.T) {
	const caddyOnly = `WARNING: DATA RACE
Read at 0x00c0003cb1e0 by goroutine 93:
  github.com/caddyserver/caddy/v2/modules/caddyhttp.(*hijackedConn).Write()
      /root/go/pkg/mod/github.com/caddyserver/caddy/v2@v2.11.9/modules/caddyhttp/responsewriter.go:304 +0x9c

Previous write at 0x00c0003cb1e0 by goroutine 92:
  github.com/caddyserver/caddy/v2/modules/caddyhttp.(*hijackedConn).ReadFrom()
      /root/go/pkg/mod/github.com/caddyserver/caddy/v2@v2.11.9/modules/caddyhttp/responsewriter.go:310 +0xea

Goroutine 93 (running) created at:
  github.com/caddyserver/caddy/v2.trapSignalsCrossPlatform.func1()

Goroutine 92 (finished) created at:
  github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy.(*Handler).handleUpgradeResponse()
  github.com/embedgate/embedgate/internal/gateway.(*Gateway).serveUpstream()
      /src/internal/gateway/inject.go:26 +0x1a1
  github.com/embedgate/embedgate/caddymodule.(*Handler).ServeHTTP()
`
	if ownRace(caddyOnly) {
		t.Error("a race between two of Caddy's accesses counted as the gateway's, for a goroutine created below its handler")
	}
	const ours = `WARNING: DATA RACE
Write at 0x00c000123456 by goroutine 7:
  github.com/embedgate/embedgate/internal/gateway.(*framingWriter).WriteHeader()
      /src/internal/gateway/framing.go:40 +0x10

Previous read at 0x00c000123456 by goroutine 8:
  github.com/caddyserver/caddy/v2/modules/caddyhttp.(*Server).ServeHTTP()

Goroutine 7 (running) created at:
  net/http.(*Server).Serve()
`
	if !ownRace(ours) {
		t.Error("a race with an access in the gateway's code was not counted as the gateway's")
	}
	const previousOurs = `WARNING: DATA RACE
Read at 0x1 by goroutine 1:
  github.com/caddyserver/caddy/v2.Stop()

Previous write at 0x1 by goroutine 2:
  github.com/embedgate/embedgate/caddymodule.(*Handler).Cleanup()
`
	if !ownRace(previousOurs) {
		t.Error("a race whose earlier access is in the gateway's code (and no creation stack) was not counted")
	}
}
