package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"
)

// The identity boundary, end to end: every request below goes through the
// built binary and a real reverse_proxy to an upstream that records what it
// received. Requests are written byte for byte on a raw TLS connection, so
// that no client library cleans a path, drops a header or refuses a Host.

// dialRaw opens an HTTP/1.1 TLS connection to the gateway (SNI
// portal.gate.test).
func dialRaw(t *testing.T, g *Gateway) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", g.HTTPSPort), &tls.Config{
		ServerName: "portal.gate.test", RootCAs: g.rootPool(), NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return conn, bufio.NewReader(conn)
}

// raw writes req verbatim on a new connection and reads one response.
func raw(t *testing.T, g *Gateway, req string) (*http.Response, string) {
	t.Helper()
	conn, br := dialRaw(t, g)
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response to %q: %v", strings.SplitN(req, "\r\n", 2)[0], err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// head is an HTTP/1.1 request head with the given header lines.
func head(method, target, host string, lines ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target, host)
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	return b.String() + "\r\n"
}

// sessionLine exchanges a fresh acme token for jane and returns the Cookie
// header line carrying the session.
func sessionLine(t *testing.T, g *Gateway, claims map[string]any) string {
	t.Helper()
	c := sessionCookie(t, exchangeJSON(t, g, "portal.gate.test", mint(t, "acme", acmeSecret, "jane@acme.test", claims)))
	return "Cookie: " + c.Name + "=" + c.Value
}

// wantBoundary400 asserts the gateway's own refusal: 400 with
// invalid_request / bad_request.
func wantBoundary400(t *testing.T, what string, resp *http.Response, body string) {
	t.Helper()
	var e map[string]string
	_ = json.Unmarshal([]byte(body), &e)
	if resp.StatusCode != http.StatusBadRequest || e["error"] != "invalid_request" || e["error_description"] != "bad_request" {
		t.Errorf("%s: got %d %q, want the gateway's 400 invalid_request/bad_request", what, resp.StatusCode, body)
	}
}

// wantUnseen asserts the upstream received no request since it had before.
func wantUnseen(t *testing.T, what string, up *Upstream, before int) {
	t.Helper()
	if n := len(up.Requests()); n != before {
		t.Errorf("%s reached the upstream (%d new requests)", what, n-before)
	}
}

// wantIdentity asserts h carries exactly the real identity and no header
// the client may not send, in any spelling.
func wantIdentity(t *testing.T, what string, h http.Header) {
	t.Helper()
	if got := h.Values("X-Embed-Tenant"); len(got) != 1 || got[0] != "acme" {
		t.Errorf("%s: upstream X-Embed-Tenant = %q, want [acme]", what, got)
	}
	if got := h.Values("X-Embed-Subject"); len(got) != 1 || got[0] != "jane@acme.test" {
		t.Errorf("%s: upstream X-Embed-Subject = %q, want [jane@acme.test]", what, got)
	}
	for k := range h {
		switch f := strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(k)); {
		case strings.ContainsAny(k, "_.") && strings.HasPrefix(f, "x-embed-"),
			f == "x-http-method-override", f == "x-http-method", f == "x-method-override", f == "http2-settings":
			t.Errorf("%s: upstream received %s: %q", what, k, h[k])
		}
	}
}

// withUpstream runs coreSite (extra in embed_session) in front of an
// upstream with handler.
func withUpstream(t *testing.T, extra string, handler http.HandlerFunc) (*Gateway, *Upstream) {
	up := newUpstream(t, handler)
	g := startGateway(t, coreSite, map[string]any{"Upstream": up.Listener.Addr().String(), "Extra": extra}, GatewayOptions{Env: coreEnv})
	return g, up
}

// TestBoundaryUpgradeTunnels stops request smuggling through a protocol
// upgrade: after a 101 the proxy copies bytes it never parses, so an h2c
// (or any non-WebSocket) upgrade would carry requests, with forged
// identity headers, that no check ever sees. HTTP2-Settings never reaches
// the app; a real WebSocket still gets its tunnel.
func TestBoundaryUpgradeTunnels(t *testing.T) {
	const sent = "bytes\x00after\xff101"
	tunnel := make(chan string, 4)
	g, up := withUpstream(t, "", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			w.WriteHeader(http.StatusOK)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", r.Header.Get("Upgrade"))
		_ = brw.Flush()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, len(sent))
		n, _ := io.ReadFull(brw, buf)
		tunnel <- string(buf[:n])
	})
	host := fmt.Sprintf("portal.gate.test:%d", g.HTTPSPort)
	cookie := sessionLine(t, g, nil)

	for _, upgrade := range []string{"h2c", "foo", "websocket, h2c", "h2c, websocket"} {
		before := len(up.Requests())
		resp, body := raw(t, g, head("GET", "/", host, cookie, "Connection: Upgrade, HTTP2-Settings", "Upgrade: "+upgrade,
			"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA", "X-Embed-Subject: mallory"))
		wantBoundary400(t, "Upgrade: "+upgrade, resp, body)
		wantUnseen(t, "Upgrade: "+upgrade, up, before)
	}

	resp, body := raw(t, g, head("GET", "/settings", host, cookie, "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("plain GET with HTTP2-Settings: %d %s", resp.StatusCode, body)
	}
	wantIdentity(t, "HTTP2-Settings", up.Last().Header)

	for _, tc := range []struct{ upgrade, origin string }{{"websocket", ""}, {"WebSocket", "Origin: https://" + host}} {
		conn, br := dialRaw(t, g)
		lines := []string{cookie, "Connection: Upgrade", "Upgrade: " + tc.upgrade, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
			"Sec-WebSocket-Version: 13", "X-Embed-Subject: mallory"}
		if tc.origin != "" {
			lines = append(lines, tc.origin)
		}
		if _, err := io.WriteString(conn, head("GET", "/socket", host, lines...)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("WebSocket %q: %v", tc.upgrade, err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ := io.ReadAll(resp.Body)
			t.Fatalf("WebSocket %q: %d %s, want 101", tc.upgrade, resp.StatusCode, body)
		}
		if _, err := io.WriteString(conn, sent); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-tunnel:
			if got != sent {
				t.Errorf("WebSocket %q: upstream read %q from the tunnel, want %q", tc.upgrade, got, sent)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("WebSocket %q: upstream read nothing from the tunnel", tc.upgrade)
		}
		wantIdentity(t, "WebSocket handshake", up.Last().Header)
	}
}

// TestBoundaryConnectionNamesProtectedHeader stops identity removal by a
// hop-by-hop list: reverse_proxy deletes every header named in Connection,
// which would delete the identity the gateway had just set.
func TestBoundaryConnectionNamesProtectedHeader(t *testing.T) {
	g, up := startCore(t, "forward_claim org.id X-Embed-Org")
	host := fmt.Sprintf("portal.gate.test:%d", g.HTTPSPort)
	cookie := sessionLine(t, g, map[string]any{"org": map[string]any{"id": "o1"}})
	for _, conn := range []string{"X-Embed-Tenant", "keep-alive, x-embed-subject", "X_Embed_Subject", "X-Embed-Org", "keep-alive,X-EMBED-ORG"} {
		before := len(up.Requests())
		resp, body := raw(t, g, head("GET", "/deals", host, cookie, "Connection: "+conn))
		wantBoundary400(t, "Connection: "+conn, resp, body)
		wantUnseen(t, "Connection: "+conn, up, before)
	}
	resp, body := raw(t, g, head("GET", "/deals", host, cookie, "Connection: keep-alive", "X-Embed-Org: spoof"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Connection: keep-alive: %d %s", resp.StatusCode, body)
	}
	h := up.Last().Header
	wantIdentity(t, "Connection: keep-alive", h)
	if got := h.Values("X-Embed-Org"); len(got) != 1 || got[0] != "o1" {
		t.Errorf("upstream X-Embed-Org = %q, want [o1]", got)
	}
}

// TestBoundaryRequestTrailers stops an identity forged in request trailers,
// which arrive after the headers were checked and which reverse_proxy
// forwards to the app.
func TestBoundaryRequestTrailers(t *testing.T) {
	var mu sync.Mutex
	var trailers []http.Header
	g, up := withUpstream(t, "", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		trailers = append(trailers, r.Trailer.Clone())
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	seen := func() []http.Header {
		mu.Lock()
		defer mu.Unlock()
		return append([]http.Header(nil), trailers...)
	}
	host := fmt.Sprintf("portal.gate.test:%d", g.HTTPSPort)
	cookie := sessionLine(t, g, nil)
	post := func(declared, trailer string) string {
		return head("POST", "/upload", host, cookie, "Content-Type: application/octet-stream", "Transfer-Encoding: chunked",
			"Trailer: "+declared) + "4\r\ndata\r\n0\r\n" + trailer + "\r\n"
	}
	forged := "X-Embed-Subject: mallory\r\nX-Embed-Tenant: beta\r\n"

	before := len(up.Requests())
	resp, body := raw(t, g, post("X-Embed-Subject", forged))
	wantBoundary400(t, "declared protected trailer", resp, body)
	wantUnseen(t, "declared protected trailer", up, before)

	// Declared harmless, sent forged (net/http takes every trailer once
	// one is declared): the body is read ahead, so it is a 400 too.
	before = len(up.Requests())
	resp, body = raw(t, g, post("X-Checksum", "X-Checksum: abc\r\n"+forged))
	wantBoundary400(t, "undeclared protected trailer", resp, body)
	wantUnseen(t, "undeclared protected trailer", up, before)
	// The same with the '.' spelling PHP folds into HTTP_X_EMBED_SUBJECT.
	before = len(up.Requests())
	resp, body = raw(t, g, post("X-Checksum", "X-Checksum: abc\r\nX.Embed.Subject: mallory\r\n"))
	wantBoundary400(t, "undeclared dotted trailer", resp, body)
	wantUnseen(t, "undeclared dotted trailer", up, before)
	for _, tr := range seen() {
		if tr.Get("X-Embed-Subject") != "" || tr.Get("X-Embed-Tenant") != "" {
			t.Errorf("a forged trailer reached the upstream: %v", tr)
		}
	}

	resp, body = raw(t, g, post("X-Checksum", "X-Checksum: abc\r\n"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("harmless trailer: %d %s", resp.StatusCode, body)
	}
	got := seen()
	if len(got) == 0 || got[len(got)-1].Get("X-Checksum") != "abc" {
		t.Errorf("upstream trailers = %v, want X-Checksum: abc", got)
	}
	wantIdentity(t, "harmless trailer", up.Last().Header)
}

// hostSite serves the same gateway on portal.gate.test and on a catch-all
// block, so that a Host no site names still reaches embed_session (as it
// would on a catch-all deployment) rather than no route at all.
const hostSite = `
(gate) {
	tls internal
	embed_session {
		session_key boundary-test-session-key-0123456789abcdef
		tenant acme {
			key {env.ACME_SECRET}
			frame_ancestors https://app.acme.test
			hosts portal.gate.test
		}
	}
	reverse_proxy {{.Upstream}}
}
portal.gate.test:{{.HTTPSPort}} {
	import gate
}
:{{.HTTPSPort}} {
	import gate
}
`

// TestBoundaryHostSpellings stops a Host spelling that normalizes to no
// configured host (acme.test:80:80, acme.test..) from escaping the host to
// tenant binding on a catch-all site.
func TestBoundaryHostSpellings(t *testing.T) {
	up := newUpstream(t, nil)
	g := startGateway(t, hostSite, map[string]any{"Upstream": up.Listener.Addr().String()}, GatewayOptions{Env: coreEnv})
	cookie := sessionLine(t, g, nil)
	for _, h := range []string{"acme.portal.test:80:80", "portal.gate.test..", "portal.gate.test:443:1", "portal.gate.test:0443",
		"portal.gate.test:99999", "[::1", "a..b", "portal.gate.test:", "-portal.gate.test", "[fe80::1%25eth0]"} {
		before := len(up.Requests())
		resp, body := raw(t, g, head("GET", "/deals", h, cookie))
		wantBoundary400(t, "Host "+h, resp, body)
		wantUnseen(t, "Host "+h, up, before)
	}
	for _, h := range []string{"portal.gate.test.", fmt.Sprintf("portal.gate.test:%d", g.HTTPSPort), "PORTAL.gate.test"} {
		resp, body := raw(t, g, head("GET", "/deals", h, cookie))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("Host %s: %d %s, want 200", h, resp.StatusCode, body)
			continue
		}
		if got := up.Last().Host; got != h {
			t.Errorf("Host %s: upstream saw Host %q", h, got)
		}
		wantIdentity(t, "Host "+h, up.Last().Header)
	}
}

// TestBoundaryPathParametersUnderPlaceholderRule stops tenant-data access
// by path confusion: the require rule reads W1 from the decoded path, while
// a servlet-style upstream drops ";params" and resolves "..", serving W2.
func TestBoundaryPathParametersUnderPlaceholderRule(t *testing.T) {
	g, up := startCore(t, "require claim workflow_id {http.request.uri.path.1}")
	host := fmt.Sprintf("portal.gate.test:%d", g.HTTPSPort)
	cookie := sessionLine(t, g, map[string]any{"workflow_id": "W1"})
	resp, body := raw(t, g, head("GET", "/workflows/W1", host, cookie))
	if resp.StatusCode != http.StatusOK || up.Last().URL.Path != "/workflows/W1" {
		t.Fatalf("own workflow: %d %s", resp.StatusCode, body)
	}
	wantIdentity(t, "own workflow", up.Last().Header)
	before := len(up.Requests())
	if resp, _ := raw(t, g, head("GET", "/workflows/W2", host, cookie)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("other workflow: %d, want 403 (the rule must be in force)", resp.StatusCode)
	}
	for _, p := range []string{"/workflows/W1/..;/W2", "/workflows/W1/..;x=1/W2", "/workflows/W1/.;/..;/W2",
		"/workflows/W1/..%3B/W2", "/workflows/W1/..%3b/W2", "/workflows/W1;x=1", "/workflows/W1/../W2", "/workflows/W1/%2e%2e/W2"} {
		resp, body := raw(t, g, head("GET", p, host, cookie))
		wantBoundary400(t, p, resp, body)
	}
	wantUnseen(t, "a non-canonical path", up, before)
}

// TestBoundarySemicolonTokenParam stops the token from slipping past the
// gateway after ';', which Rack and older Python split on like '&': the
// app (and its logs) would otherwise receive a live token.
func TestBoundarySemicolonTokenParam(t *testing.T) {
	g, up := startCore(t, "")
	host := fmt.Sprintf("portal.gate.test:%d", g.HTTPSPort)
	tok := mint(t, "acme", acmeSecret, "jane@acme.test", nil)
	resp, body := raw(t, g, head("GET", "/deals?a=1;embed_token="+tok, host))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/deals?a=1" {
		t.Fatalf("status %d Location %q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	c := sessionCookie(t, resp)
	if resp, body := raw(t, g, head("GET", "/deals?a=1", host, "Cookie: "+c.Name+"="+c.Value)); resp.StatusCode != http.StatusOK {
		t.Fatalf("following the redirect: %d %s", resp.StatusCode, body)
	}
	if q := up.Last().URL.RawQuery; q != "a=1" {
		t.Errorf("upstream query = %q, want a=1", q)
	}
	wantIdentity(t, "after the redirect", up.Last().Header)
	for _, r := range up.Requests() {
		if strings.Contains(r.URL.RawQuery, "embed_token") || strings.Contains(r.URL.RawQuery, tok) {
			t.Errorf("the token reached the upstream: %q", r.URL.RawQuery)
		}
	}
}

// TestBoundaryMethodOverrideHeaders stops CSRF by method override: a
// cross-site GET passes the origin check as a safe method, and a framework
// honouring X-HTTP-Method-Override would run it as a DELETE. (The '_'
// spelling is in TestBoundaryUnderscoreSpellings: Caddy drops it by default.)
func TestBoundaryMethodOverrideHeaders(t *testing.T) {
	g, up := startCore(t, "")
	host := fmt.Sprintf("portal.gate.test:%d", g.HTTPSPort)
	cookie := sessionLine(t, g, nil)
	for _, name := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "x-http-method-override"} {
		resp, body := raw(t, g, head("GET", "/deals/7", host, cookie, "Sec-Fetch-Site: cross-site", "Sec-Fetch-Mode: no-cors", name+": DELETE"))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, body)
		}
		if last := up.Last(); last.Method != http.MethodGet {
			t.Errorf("%s: upstream method %s", name, last.Method)
		}
		wantIdentity(t, name, up.Last().Header)
	}
}

// startUnderscoreCore is startCore with Caddy's server option
// expected_underscore_headers for names: by default Caddy drops every header
// whose name holds '_' before any handler runs, so only with this option do
// underscore spellings reach the gateway, whose own check is then the one
// that must hold.
func startUnderscoreCore(t *testing.T, names string) (*Gateway, *Upstream) {
	return startCoreWithServers(t, "expected_underscore_headers "+names+"\n\t\texpected_dot_headers "+strings.ReplaceAll(names, "_", "."))
}

// startCoreWithServers starts coreSite with servers (lines of Caddy's
// global servers option) added to the global options, before an upstream
// that answers 200 to anything.
func startCoreWithServers(t *testing.T, servers string) (*Gateway, *Upstream) {
	up := newUpstream(t, nil)
	g := &Gateway{t: t, Dir: t.TempDir(), AdminPort: freePort(t), HTTPSPort: freePort(t)}
	g.Config = filepath.Join(g.Dir, "Caddyfile")
	global := strings.Replace(globalOptions, "\tlocal_certs\n", "\tlocal_certs\n\tservers {\n\t\t"+servers+"\n\t}\n", 1)
	var b bytes.Buffer
	err := template.Must(template.New("caddyfile").Parse(global+coreSite)).Execute(&b, map[string]any{"AdminPort": g.AdminPort,
		"HTTPSPort": g.HTTPSPort, "HTTPPort": freePort(t), "Dir": g.Dir, "Upstream": up.Listener.Addr().String(), "Extra": ""})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g.Config, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	g.run(g.Config, append(append([]string(nil), coreEnv...), "HOME="+g.Dir, "XDG_DATA_HOME="+g.Dir, "XDG_CONFIG_HOME="+g.Dir))
	return g, up
}

// TestBoundaryUnderscoreSpellings stops a forged identity or method
// override spelled with '_' or '.', which CGI, PHP and some proxies map to
// the same variable as the '-' spelling, on a server that lets such headers
// in (expected_underscore_headers, expected_dot_headers).
func TestBoundaryUnderscoreSpellings(t *testing.T) {
	g, up := startUnderscoreCore(t, "X_HTTP_Method_Override X_Embed_Subject X_Embed_Tenant X_Probe")
	host := fmt.Sprintf("portal.gate.test:%d", g.HTTPSPort)
	cookie := sessionLine(t, g, nil)
	resp, body := raw(t, g, head("GET", "/deals/7", host, cookie, "Sec-Fetch-Site: cross-site", "X_HTTP_Method_Override: DELETE",
		"X_Embed_Subject: mallory", "X_Embed_Tenant: beta", "X_Probe: 1",
		"X.HTTP.Method.Override: DELETE", "X.Embed.Subject: mallory", "X.Embed.Tenant: beta", "X.Probe: 1"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	h := up.Last().Header
	for _, name := range []string{"X_Probe", "X.Probe"} {
		probe := false
		for k := range h {
			probe = probe || strings.EqualFold(k, name)
		}
		if !probe {
			t.Fatalf("the allowlisted %s did not reach the upstream (%v): the server option is not in force", name, h)
		}
	}
	wantIdentity(t, "underscore spellings", h)
}
