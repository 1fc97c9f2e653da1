package e2e

import (
	"fmt"
	"net/http"
	"testing"
)

// TestBoundaryHostFromRequestLineAndTrailers stops the ways a client had
// the app read another host than the one the session is bound to, through
// the built binary behind trusted_proxies (a load balancer in front, as in
// most deployments):
//   - a path beginning "//": Node's new URL(req.url, base) and Python's
//     urlsplit read "//globex.gate.test/deals" as host globex.gate.test,
//     and the acme session's app answered with globex's data;
//   - X-Forwarded-Host from the client, which Caddy's proxy passes on as it
//     came from a trusted proxy that sets none (Express in trust-proxy
//     mode, Symfony, Laravel read it): the app now gets the checked Host;
//   - request trailers naming Cookie, Host or Forwarded, which Caddy
//     forwards and a server merging trailers into headers would honour.
func TestBoundaryHostFromRequestLineAndTrailers(t *testing.T) {
	g, up := startCoreWithServers(t, "trusted_proxies static 127.0.0.1/32 ::1/128")
	host := fmt.Sprintf("portal.gate.test:%d", g.HTTPSPort)
	cookie := sessionLine(t, g, nil)
	for _, target := range []string{"//globex.gate.test/deals", "///globex.gate.test/deals", "/%2Fglobex.gate.test/deals", "/%5Cglobex.gate.test/deals", "*"} {
		before := len(up.Requests())
		resp, body := raw(t, g, head("GET", target, host, cookie))
		wantBoundary400(t, "GET "+target, resp, body)
		wantUnseen(t, "GET "+target, up, before)
	}

	resp, body := raw(t, g, head("GET", "/deals", host, cookie, "X-Forwarded-Host: globex.gate.test", "X-Forwarded-Proto: https"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET with X-Forwarded-Host: %d %s", resp.StatusCode, body)
	}
	if got := up.Last().Header.Values("X-Forwarded-Host"); len(got) != 1 || got[0] != host {
		t.Errorf("upstream X-Forwarded-Host = %q, want the checked Host %q", got, host)
	}
	wantIdentity(t, "X-Forwarded-Host", up.Last().Header)

	for _, trailer := range []string{"Cookie: __Host-embed_session=planted", "Host: globex.gate.test", "Forwarded: host=globex.gate.test", "X-Forwarded-Host: globex.gate.test"} {
		before := len(up.Requests())
		req := head("POST", "/upload", host, cookie, "Transfer-Encoding: chunked", "Trailer: X-Checksum") +
			"4\r\ndata\r\n0\r\nX-Checksum: abc\r\n" + trailer + "\r\n\r\n"
		resp, body := raw(t, g, req)
		wantBoundary400(t, "trailer "+trailer, resp, body)
		wantUnseen(t, "trailer "+trailer, up, before)
	}
}
