package caddymodule_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/testsupport"
)

// These tests run the module inside a real Caddy (caddytest starts one in
// this process, admin on localhost:2999 as in Caddy's own integration
// tests) behind Caddy's real replacer, reverse_proxy and access logger: the
// regressions they guard depend on how the handler and Caddy fit together,
// which the unit tests of internal/gateway cannot see.

const (
	ctPort    = 9181 // http_port; clear of 2019, 2999, 8443, 8444 and 9080
	ctBase    = "http://localhost:9181"
	ctSecret  = "acme-caddytest-hs256-secret-0123456789abcdef" // >= 32 bytes
	ctSealKey = "caddytest-session-sealing-key-0123456789abcdef"
	ctSubject = "jane@acme.test"
	ctCookie  = "__Host-embed_session"
)

// seenRequest is what the upstream app received.
type seenRequest struct {
	URI    string // RequestURI, as sent on the wire by the proxy
	Header http.Header
}

// upstream is the app behind reverse_proxy; it records every request.
type upstream struct {
	mu   sync.Mutex
	seen []seenRequest
	addr string
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, seenRequest{URI: r.RequestURI, Header: r.Header.Clone()})
		u.mu.Unlock()
		fmt.Fprint(w, "app")
	}))
	t.Cleanup(srv.Close)
	u.addr = strings.TrimPrefix(srv.URL, "http://")
	return u
}

// take returns and forgets the requests received so far.
func (u *upstream) take() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := u.seen
	u.seen = nil
	return out
}

// startGateway loads a Caddyfile: embed_session (with extra subdirectives)
// before reverse_proxy to the upstream, header_up X-User from
// {http.auth.user.id}, and a JSON access log, whose path it returns.
func startGateway(t *testing.T, up *upstream, extra string) (*caddytest.Tester, string) {
	t.Helper()
	tester, dir := newTester(t)
	accessLog := filepath.Join(dir, "access.log")
	tester.InitServer(globalOptions(dir, "")+fmt.Sprintf(`
	%s {
		log {
			output file %s
			format json
		}
		embed_session {
			tenant acme {
				key %s
				frame_ancestors https://app.acme.test
			}
			session_key %s
			%s
		}
		reverse_proxy %s {
			header_up X-User {http.auth.user.id}
		}
	}
	`, ctBase, accessLog, ctSecret, ctSealKey, extra, up.addr), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return tester, accessLog
}

// newTester is a caddytest.Tester that does not follow redirects, and a
// directory for the test's storage and logs. Not t.TempDir: Caddy's
// storage cleaning runs in the background and may still write there when
// the test ends, which would fail its RemoveAll.
func newTester(t *testing.T) (*caddytest.Tester, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "embedgate-caddytest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	// Registered before InitServer, so it runs after caddytest's own
	// cleanup (which dumps the config of a failed test): leave an empty
	// config behind, so no handler of this test outlives it.
	t.Cleanup(func() { unload(t) })
	tester := caddytest.NewTester(t)
	tester.Client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return tester, dir
}

// globalOptions is the Caddyfile's global block for a test whose storage
// is under dir, with more options (such as a log) in extra.
func globalOptions(dir, extra string) string {
	return fmt.Sprintf(`
	{
		skip_install_trust
		admin localhost:2999
		http_port %d
		https_port 9544
		grace_period 1ns
		persist_config off
		storage file_system %s
		%s
	}`, ctPort, filepath.Join(dir, "storage"), extra)
}

// unload replaces the test's config with one that serves nothing.
func unload(t *testing.T) {
	body := `{"admin":{"listen":"localhost:2999","config":{"persist":false}}}`
	resp, err := http.Post("http://localhost:2999/load", "application/json", strings.NewReader(body))
	if err != nil {
		t.Logf("unloading the test config: %v", err)
		return
	}
	resp.Body.Close()
}

// mint signs a one-time HS256 token for tenant acme, with extra claims.
func mint(t *testing.T, extra map[string]any) string {
	t.Helper()
	claims := testsupport.Claims("acme", ctSubject, time.Now())
	for k, v := range extra {
		claims[k] = v
	}
	return testsupport.Mint(t, testsupport.HS256(ctSecret, ""), claims)
}

// sessionCookie reads the session cookie from resp's Set-Cookie lines.
func sessionCookie(t *testing.T, resp *http.Response) string {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == ctCookie && c.Value != "" {
			return c.Value
		}
	}
	t.Fatalf("no %s cookie in %q", ctCookie, resp.Header.Values("Set-Cookie"))
	return ""
}

// login exchanges a fresh token at POST /.embed/exchange and returns the
// session cookie value. Over plain HTTP the jar keeps a Secure cookie to
// itself, so callers send it back by hand.
func login(t *testing.T, tester *caddytest.Tester, extra map[string]any) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ctBase+"/.embed/exchange",
		strings.NewReader(`{"token":"`+mint(t, extra)+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp := tester.AssertResponseCode(req, http.StatusNoContent)
	defer resp.Body.Close()
	return sessionCookie(t, resp)
}

// get requests path with the session cookie (if any) and extra headers,
// asserts the status and returns the response (body read and closed).
func get(t *testing.T, tester *caddytest.Tester, path, cookie string, status int, hdr ...string) *http.Response {
	t.Helper()
	return do(t, tester, http.MethodGet, path, cookie, status, hdr...)
}

func do(t *testing.T, tester *caddytest.Tester, method, path, cookie string, status int, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, ctBase+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "" {
		req.Header.Set("Cookie", ctCookie+"="+cookie)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" { // the client's Host, as an attacker writes it
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp := tester.AssertResponseCode(req, status)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestCaddytestHeaderUpSubjectCannotBeForged stops identity spoofing through
// a header the app trusts: `header_up X-User {http.auth.user.id}` must send
// the subject the gateway verified, and a client that sends its own X-User
// (or X-Embed-Subject / X-Embed-Tenant) must not get it past the proxy,
// neither instead of nor beside the real one. Without a session the forged
// headers must not reach the app at all; and the app never sees the session
// cookie, which would let it (or its logs) replay the session.
func TestCaddytestHeaderUpSubjectCannotBeForged(t *testing.T) {
	up := newUpstream(t)
	tester, _ := startGateway(t, up, "")

	forged := []string{"X-User", "admin@evil.test", "X-User", "root", "X-Embed-Subject", "admin@evil.test", "X-Embed-Tenant", "globex"}

	// No session: refused before the proxy, forged headers or not.
	get(t, tester, "/app/data", "", http.StatusUnauthorized, forged...)
	if seen := up.take(); len(seen) != 0 {
		t.Fatalf("the app was reached without a session: %+v", seen)
	}

	cookie := login(t, tester, nil)
	get(t, tester, "/app/data", cookie, http.StatusOK, forged...)
	seen := up.take()
	if len(seen) != 1 {
		t.Fatalf("the app got %d requests, want 1", len(seen))
	}
	h := seen[0].Header
	for name, want := range map[string]string{"X-User": ctSubject, "X-Embed-Subject": ctSubject, "X-Embed-Tenant": "acme"} {
		if got := h.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("upstream %s = %q, want exactly [%q] (the verified identity)", name, got, want)
		}
	}
	if c := h.Get("Cookie"); strings.Contains(c, ctCookie) || strings.Contains(c, cookie) {
		t.Errorf("upstream got the session cookie: %q", c)
	}
}

// TestCaddytestTokenURLKeptOutOfAccessLog stops token leakage through the
// access log: a GET with ?embed_token= carries a token that may still be
// unused when the log is read (a log reader could then sign in as the
// user), so the handler sets caddyhttp.LogSkipVar and Caddy's access log
// must not record the request at all, while ordinary requests are still
// logged. The token URL itself never reaches the app either.
// (TestCaddytestTokenURLNeverReachesErrorPath covers Caddy's error path.)
func TestCaddytestTokenURLKeptOutOfAccessLog(t *testing.T) {
	up := newUpstream(t)
	tester, logFile := startGateway(t, up, "")

	tok := mint(t, nil)
	resp := get(t, tester, "/app/page?embed_token="+tok+"&tab=2", "", http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != "/app/page?tab=2" {
		t.Errorf("Location = %q, want /app/page?tab=2 (the URL without the token)", loc)
	}
	cookie := sessionCookie(t, resp)
	if seen := up.take(); len(seen) != 0 {
		t.Errorf("the token URL reached the app: %+v", seen)
	}
	// A token in the URL of a request that is not exchanged (a POST with
	// a session) is refused, never sent on, and kept out of the log too.
	tok2 := mint(t, nil)
	do(t, tester, http.MethodPost, "/app/other?embed_token="+tok2+"&x=1", cookie, http.StatusBadRequest)
	if seen := up.take(); len(seen) != 0 {
		t.Errorf("POST with a token URL: upstream saw %+v", seen)
	}

	// A request that is logged, after the token requests: once its line is
	// in the file, theirs would be too.
	const marker = "/app/logged-marker"
	get(t, tester, marker, cookie, http.StatusOK)
	var logged []byte
	deadline := time.Now().Add(5 * time.Second)
	for {
		logged, _ = os.ReadFile(logFile)
		if bytes.Contains(logged, []byte(marker)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ordinary request %s never reached the access log; log:\n%s", marker, logged)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, leak := range []string{tok, tok2, "embed_token", "/app/page", "/app/other"} {
		if bytes.Contains(logged, []byte(leak)) {
			t.Errorf("access log holds %q from a token URL:\n%s", leak, logged)
		}
	}
}

// TestCaddytestRequirePathRuleNoTraversal stops cross-tenant access through
// path tricks: with `require claim org {http.request.uri.path.0}`, Caddy's
// replacer reads "acme" from /acme/../globex or /acme/..;/globex, so the
// rule passes, while the app (or a servlet container dropping ";params")
// resolves the path to /globex and serves another organisation's data. Such
// non-canonical paths must be refused with 400 before the proxy; the plain
// path of the session's own org passes, another org's is 403.
func TestCaddytestRequirePathRuleNoTraversal(t *testing.T) {
	up := newUpstream(t)
	tester, _ := startGateway(t, up, "require claim org {http.request.uri.path.0}")
	cookie := login(t, tester, map[string]any{"org": "acme"})

	get(t, tester, "/acme/x", cookie, http.StatusOK)
	if seen := up.take(); len(seen) != 1 || seen[0].URI != "/acme/x" {
		t.Fatalf("own org: upstream saw %+v, want one request for /acme/x", seen)
	}

	get(t, tester, "/globex/x", cookie, http.StatusForbidden)
	if seen := up.take(); len(seen) != 0 {
		t.Fatalf("another org's path reached the app: %+v", seen)
	}

	for _, p := range []string{
		"/acme/../globex",
		"/acme/../globex/x",
		"/acme/..;/globex",
		"/acme/%2e%2e/globex",
		"/acme/..%2fglobex",
		"/acme//../globex",
		"/acme/.%2e;x/globex",
	} {
		get(t, tester, p, cookie, http.StatusBadRequest)
		if seen := up.take(); len(seen) != 0 {
			t.Errorf("%s reached the app: %+v", p, seen)
		}
	}
}

// ctJWKSKey fetches /.embed/jwks.json and returns its one P-256 key.
func ctJWKSKey(t *testing.T, tester *caddytest.Tester) *ecdsa.PublicKey {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ctBase+"/.embed/jwks.json", nil)
	r := tester.AssertResponseCode(req, http.StatusOK)
	defer r.Body.Close()
	if cc := r.Header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Errorf("JWKS Cache-Control = %q", cc)
	}
	var set struct {
		Keys []struct{ Kty, Crv, X, Y string } `json:"keys"`
	}
	if err := json.NewDecoder(r.Body).Decode(&set); err != nil || len(set.Keys) != 1 || set.Keys[0].Crv != "P-256" {
		t.Fatalf("JWKS: %+v %v", set, err)
	}
	x, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].X)
	y, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].Y)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestCaddytestForgedAssertionNeverReachesApp stops identity forgery
// through the signed assertion: an app that trusts X-Embed-Assertion (or
// the header `assertion { header … }` names) because it verifies, must
// only ever receive the gateway's own, signed with the generated key that
// /.embed/jwks.json publishes. A client's copy, in any spelling, is
// stripped (with a session and without one), a Connection header naming
// it is refused, and with a custom header the default one is not sent.
func TestCaddytestForgedAssertionNeverReachesApp(t *testing.T) {
	for _, c := range []struct{ extra, header string }{
		{"assertion", "X-Embed-Assertion"},
		{"assertion {\n\t\t\t\theader X-App-Identity\n\t\t\t}", "X-App-Identity"},
	} {
		t.Run(c.header, func(t *testing.T) {
			up := newUpstream(t)
			tester, _ := startGateway(t, up, c.extra)
			forgedTok := testsupport.Mint(t, testsupport.HS256(ctSecret, ""), map[string]any{"sub": "admin@evil.test"})
			forged := []string{c.header, forgedTok, strings.ReplaceAll(c.header, "-", "_"), forgedTok}

			get(t, tester, "/app", "", http.StatusUnauthorized, forged...)
			if seen := up.take(); len(seen) != 0 {
				t.Fatalf("the app was reached without a session: %+v", seen)
			}
			cookie := login(t, tester, nil)
			get(t, tester, "/app", cookie, http.StatusOK, forged...)
			seen := up.take()
			if len(seen) != 1 {
				t.Fatalf("the app got %d requests", len(seen))
			}
			got := seen[0].Header.Values(c.header)
			if len(got) != 1 || got[0] == forgedTok {
				t.Fatalf("upstream %s = %q, want exactly the gateway's", c.header, got)
			}
			if c.header != "X-Embed-Assertion" && seen[0].Header.Get("X-Embed-Assertion") != "" {
				t.Error("the default header was sent beside the custom one")
			}
			pub := ctJWKSKey(t, tester)
			claims := jwt.MapClaims{}
			if _, err := jwt.ParseWithClaims(got[0], claims, func(*jwt.Token) (any, error) { return pub, nil },
				jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(ctBase), jwt.WithAudience(ctBase)); err != nil {
				t.Fatalf("the app's assertion does not verify against the JWKS: %v", err)
			}
			if claims["sub"] != ctSubject || claims["tenant"] != "acme" {
				t.Fatalf("claims %v", claims)
			}
			get(t, tester, "/app", cookie, http.StatusBadRequest, "Connection", c.header)
			if seen := up.take(); len(seen) != 0 {
				t.Fatalf("Connection naming %s reached the app", c.header)
			}
		})
	}
}

// TestCaddytestAssertionNeverVouchesForHostPort stops a session holder
// from having the gateway vouch for another site on the same host name:
// Caddy's host matcher and the session cookie both ignore Host's port, so
// "Host: localhost:8443" sent to this site's listener reaches it with a
// valid session. The signed assertion's iss and aud must still name the
// origin this listener serves, never the port the client wrote, or an app
// at :8443 trusting the same generated key (one per storage) would accept
// it without that site's own tenants and require rules.
func TestCaddytestAssertionNeverVouchesForHostPort(t *testing.T) {
	up := newUpstream(t)
	tester, _ := startGateway(t, up, "assertion")
	cookie := login(t, tester, nil)
	pub := ctJWKSKey(t, tester)
	for _, host := range []string{"localhost:8443", "localhost", "LOCALHOST:9181"} {
		get(t, tester, "/app", cookie, http.StatusOK, "Host", host)
		seen := up.take()
		if len(seen) != 1 {
			t.Fatalf("Host %s: the app got %d requests", host, len(seen))
		}
		claims := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(seen[0].Header.Get("X-Embed-Assertion"), claims, func(*jwt.Token) (any, error) { return pub, nil },
			jwt.WithValidMethods([]string{"ES256"})); err != nil {
			t.Fatalf("Host %s: %v", host, err)
		}
		if claims["iss"] != ctBase || claims["aud"] != ctBase {
			t.Errorf("Host %s: iss %v, aud %v; want %s, the listener's origin", host, claims["iss"], claims["aud"], ctBase)
		}
	}
}

// TestCaddytestSessionDataNotReadableCrossSite stops cross-site script
// inclusion of the signed-in user: a stranger's frame on the customer's
// page (an ad) shares the embed's partitioned cookie, and bridge.js, a
// script rendered per session, would run there with window.parent shadowed
// and hand it the session's sub. A page of another site gets 403 for
// bridge.js and {prefix}/session; the app's own pages get both, marked
// Cross-Origin-Resource-Policy: same-origin for browsers that send no
// Sec-Fetch-Site.
func TestCaddytestSessionDataNotReadableCrossSite(t *testing.T) {
	up := newUpstream(t)
	tester, _ := startGateway(t, up, "")
	cookie := login(t, tester, nil)
	for _, path := range []string{"/.embed/bridge.js", "/.embed/session"} {
		for _, site := range []string{"cross-site", "same-site"} {
			get(t, tester, path, cookie, http.StatusForbidden, "Sec-Fetch-Site", site, "Sec-Fetch-Dest", "script")
		}
		resp := get(t, tester, path, cookie, http.StatusOK, "Sec-Fetch-Site", "same-origin")
		if got := resp.Header.Get("Cross-Origin-Resource-Policy"); got != "same-origin" {
			t.Errorf("%s: Cross-Origin-Resource-Policy %q, want same-origin", path, got)
		}
	}
}
