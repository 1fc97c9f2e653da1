package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/testsupport"
)

const (
	acmeSecret   = "acme-test-secret-0123456789abcdef0123"
	globexSecret = "globex-test-secret-0123456789abcdef01"
)

// coreSite is a two-tenant gateway in front of the test upstream.
const coreSite = `
portal.gate.test:{{.HTTPSPort}}, globex.gate.test:{{.HTTPSPort}} {
	tls internal
	log
	embed_session {
		tenant acme {
			key {env.ACME_SECRET}
			frame_ancestors https://app.acme.test
			login_url https://app.acme.test/login
		}
		tenant globex {
			key {env.GLOBEX_SECRET}
			frame_ancestors https://globex.test
			hosts globex.gate.test
		}
		{{.Extra}}
	}
	reverse_proxy {{.Upstream}}
}
`

var coreEnv = []string{"ACME_SECRET=" + acmeSecret, "GLOBEX_SECRET=" + globexSecret}

// mint signs a token the way a customer's backend does: testsupport's
// claims for tenant and sub, with extra over them, under an HS256 secret.
func mint(t testing.TB, tenant, secret, sub string, extra map[string]any) string {
	t.Helper()
	claims := testsupport.Claims(tenant, sub, time.Now())
	maps.Copy(claims, extra)
	return testsupport.Mint(t, testsupport.HS256(secret, ""), claims)
}

func startCore(t *testing.T, extra string) (*Gateway, *Upstream) {
	up := newUpstream(t, nil)
	g := startGateway(t, coreSite, map[string]any{"Upstream": up.Listener.Addr().String(), "Extra": extra}, GatewayOptions{Env: coreEnv})
	return g, up
}

func exchangeJSON(t *testing.T, g *Gateway, host, tok string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", g.URL(host, "/.embed/exchange"), strings.NewReader(`{"token":"`+tok+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func sessionCookie(t *testing.T, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-embed_session" && c.Value != "" {
			return c
		}
	}
	t.Fatalf("no session cookie in %v", resp.Header.Values("Set-Cookie"))
	return nil
}

func get(t *testing.T, g *Gateway, host, path string, hdr map[string]string, cookie *http.Cookie) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", g.URL(host, path), nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := g.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// The done-when: a backend mints a token with a few lines, the
// exchange sets the cookie, and the identity arrives upstream, verified.
func TestBinaryExchangeToUpstreamIdentity(t *testing.T) {
	g, up := startCore(t, "forward_claim org.id X-Embed-Org")
	tok := mint(t, "acme", acmeSecret, "jane@acme.com", map[string]any{"org": map[string]any{"id": "org-7"}})

	resp := exchangeJSON(t, g, "portal.gate.test", tok)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("exchange status = %d", resp.StatusCode)
	}
	setCookie := resp.Header.Get("Set-Cookie")
	for _, attr := range []string{"__Host-embed_session=", "Path=/", "Secure", "HttpOnly", "SameSite=None", "Partitioned", "Max-Age=28800"} {
		mustContain(t, setCookie, attr)
	}
	if strings.Contains(setCookie, "Domain") {
		t.Fatalf("__Host- cookie must not carry Domain: %s", setCookie)
	}
	c := sessionCookie(t, resp)
	if len(setCookie) > 1024 {
		t.Fatalf("cookie is %d bytes, want < 1 KiB", len(setCookie))
	}

	// A client-supplied identity is stripped, in any spelling.
	r, body := get(t, g, "portal.gate.test", "/deals", map[string]string{
		"X-Embed-Subject": "attacker", "X-EMBED-TENANT": "globex", "X_Embed_Subject": "attacker2", "X-Embed-Org": "spoof",
		"Cookie": "theme=dark",
	}, c)
	if r.StatusCode != 200 {
		t.Fatalf("status %d: %s", r.StatusCode, body)
	}
	seen := up.Last()
	if got := seen.Header.Values("X-Embed-Subject"); len(got) != 1 || got[0] != "jane@acme.com" {
		t.Fatalf("upstream X-Embed-Subject = %q", got)
	}
	if got := seen.Header.Get("X-Embed-Tenant"); got != "acme" {
		t.Fatalf("upstream X-Embed-Tenant = %q", got)
	}
	if got := seen.Header.Values("X-Embed-Org"); len(got) != 1 || got[0] != "org-7" {
		t.Fatalf("upstream X-Embed-Org = %q", got)
	}
	for k := range seen.Header {
		if strings.Contains(strings.ToLower(k), "x_embed") {
			t.Fatalf("underscore variant %q reached upstream", k)
		}
	}
	if ck := seen.Header.Get("Cookie"); strings.Contains(ck, "embed_session") || !strings.Contains(ck, "theme=dark") {
		t.Fatalf("upstream Cookie = %q: session cookie must be removed, others kept", ck)
	}
	if csp := r.Header.Get("Content-Security-Policy"); csp != "frame-ancestors https://app.acme.test" {
		t.Fatalf("CSP = %q", csp)
	}

	// The token is single-use.
	if resp := exchangeJSON(t, g, "portal.gate.test", tok); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replay status = %d", resp.StatusCode)
	}

	// Caddy's access log shows the user; no log line holds the token or the cookie.
	g.WaitLog(t, `"user_id":"jane@acme.com"`)
	logs := g.WaitLog(t, `"reason":"replayed"`)
	if strings.Contains(logs, tok) || strings.Contains(logs, c.Value) || strings.Contains(logs, acmeSecret) {
		t.Fatal("a token, cookie value or secret appears in the logs")
	}
}

func TestBinaryTokenParamRedirect(t *testing.T) {
	g, up := startCore(t, "")
	tok := mint(t, "acme", acmeSecret, "jane@acme.com", nil)
	resp, _ := get(t, g, "portal.gate.test", "/deals?x=1&embed_token="+tok+"&y=a%20b", nil, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != "/deals?x=1&y=a%20b" {
		t.Fatalf("Location = %q", loc)
	}
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("headers: %v", resp.Header)
	}
	for _, r := range up.Requests() {
		if strings.Contains(r.URL.RawQuery, "embed_token") {
			t.Fatal("the token reached the upstream")
		}
	}
	c := sessionCookie(t, resp)
	if r, _ := get(t, g, "portal.gate.test", "/deals?x=1", nil, c); r.StatusCode != 200 {
		t.Fatalf("after redirect: %d", r.StatusCode)
	}
}

func TestBinaryNoSessionAndTenantHosts(t *testing.T) {
	g, up := startCore(t, "")
	// JSON client without a session.
	r, body := get(t, g, "portal.gate.test", "/api/x", nil, nil)
	if r.StatusCode != 401 || !strings.Contains(body, "session_missing") {
		t.Fatalf("api without session: %d %s", r.StatusCode, body)
	}
	if r.Header.Get("Content-Security-Policy") != "frame-ancestors 'none'" {
		t.Fatalf("no tenant known: CSP = %q", r.Header.Get("Content-Security-Policy"))
	}
	// A framed navigation gets the HTML gate page.
	r, body = get(t, g, "globex.gate.test", "/", map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe", "Accept": "text/html"}, nil)
	if r.StatusCode != 401 || !strings.Contains(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("gate: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	mustContain(t, r.Header.Get("Content-Security-Policy"), "frame-ancestors https://globex.test")
	if len(up.Requests()) != 0 {
		t.Fatal("requests without a session reached the upstream")
	}
	// A globex session is refused on acme's... and an acme session on globex's host.
	tok := mint(t, "acme", acmeSecret, "jane@acme.com", nil)
	c := sessionCookie(t, exchangeJSON(t, g, "portal.gate.test", tok))
	if r, _ := get(t, g, "globex.gate.test", "/", nil, c); r.StatusCode != 401 {
		t.Fatalf("acme session on globex host: %d", r.StatusCode)
	}
	// An acme token on globex's host is refused without trying globex keys.
	resp := exchangeJSON(t, g, "globex.gate.test", mint(t, "acme", acmeSecret, "jane@acme.com", nil))
	if resp.StatusCode != 401 {
		t.Fatalf("acme token on globex host: %d", resp.StatusCode)
	}
}

func TestBinaryUnsafeCrossOriginRefused(t *testing.T) {
	g, up := startCore(t, "")
	c := sessionCookie(t, exchangeJSON(t, g, "portal.gate.test", mint(t, "acme", acmeSecret, "jane@acme.com", nil)))
	post := func(origin, site string) int {
		req, _ := http.NewRequest("POST", g.URL("portal.gate.test", "/deals"), strings.NewReader("a=1"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		req.AddCookie(c)
		resp, err := g.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	before := len(up.Requests())
	for _, tc := range []struct{ origin, site string }{{"https://evil.other.test", "cross-site"}, {"null", "cross-site"}, {"", "cross-site"}} {
		if code := post(tc.origin, tc.site); code != 403 {
			t.Fatalf("POST from %q/%q = %d, want 403", tc.origin, tc.site, code)
		}
	}
	if len(up.Requests()) != before {
		t.Fatal("a refused POST reached the upstream")
	}
	self := fmt.Sprintf("https://portal.gate.test:%d", g.HTTPSPort)
	for _, tc := range []struct{ origin, site string }{{self, "same-origin"}, {"https://app.acme.test", "cross-site"}, {"", ""}} {
		if code := post(tc.origin, tc.site); code != 200 {
			t.Fatalf("POST from %q/%q = %d, want 200", tc.origin, tc.site, code)
		}
	}
}

func TestBinarySignout(t *testing.T) {
	g, _ := startCore(t, "")
	c := sessionCookie(t, exchangeJSON(t, g, "portal.gate.test", mint(t, "acme", acmeSecret, "jane@acme.com", nil)))
	r, body := get(t, g, "portal.gate.test", "/.embed/session", nil, c)
	if r.StatusCode != 200 {
		t.Fatalf("session: %d", r.StatusCode)
	}
	var info map[string]string
	if err := json.Unmarshal([]byte(body), &info); err != nil || info["tenant"] != "acme" || info["sub"] != "jane@acme.com" || info["expires_at"] == "" {
		t.Fatalf("session info = %s", body)
	}
	req, _ := http.NewRequest("POST", g.URL("portal.gate.test", "/.embed/signout"), nil)
	req.AddCookie(c)
	resp, err := g.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("signout: %d", resp.StatusCode)
	}
	for _, a := range []string{"Max-Age=0", "Partitioned", "Secure", "SameSite=None", "Path=/"} {
		mustContain(t, resp.Header.Get("Set-Cookie"), a)
	}
	if r, _ := get(t, g, "portal.gate.test", "/.embed/session", nil, c); r.StatusCode != 401 {
		t.Fatalf("revoked cookie: %d", r.StatusCode)
	}
}

// A graceful reload keeps the replay state: a used token stays used.
func TestBinaryReloadKeepsReplayState(t *testing.T) {
	up := newUpstream(t, nil)
	data := map[string]any{"Upstream": up.Listener.Addr().String(), "Extra": ""}
	g := startGateway(t, coreSite, data, GatewayOptions{Env: coreEnv})
	tok := mint(t, "acme", acmeSecret, "jane@acme.com", nil)
	c := sessionCookie(t, exchangeJSON(t, g, "portal.gate.test", tok))

	data["Extra"] = "idle_timeout 20m"
	g.Reload(coreSite, data)

	if resp := exchangeJSON(t, g, "portal.gate.test", tok); resp.StatusCode != 401 {
		t.Fatalf("token used before the reload was accepted after it: %d", resp.StatusCode)
	}
	if r, _ := get(t, g, "portal.gate.test", "/x", nil, c); r.StatusCode != 200 {
		t.Fatalf("session lost over reload: %d", r.StatusCode)
	}
}

// With no session_key, the generated key lives in Caddy's storage: a
// restart on the same storage keeps sessions valid.
func TestBinaryGeneratedSessionKeySurvivesRestart(t *testing.T) {
	up := newUpstream(t, nil)
	data := map[string]any{"Upstream": up.Listener.Addr().String(), "Extra": ""}
	g := startGateway(t, coreSite, data, GatewayOptions{Env: coreEnv})
	c := sessionCookie(t, exchangeJSON(t, g, "portal.gate.test", mint(t, "acme", acmeSecret, "jane@acme.com", nil)))
	g.Stop()
	if _, err := os.Stat(filepath.Join(g.Dir, "embedgate", "session_key")); err != nil {
		t.Fatalf("generated key not in storage: %v", err)
	}
	g2 := startGateway(t, coreSite, data, GatewayOptions{Env: coreEnv, Dir: g.Dir, AdminPort: g.AdminPort, HTTPSPort: g.HTTPSPort})
	if r, _ := get(t, g2, "portal.gate.test", "/x", nil, c); r.StatusCode != 200 {
		t.Fatalf("session after restart: %d", r.StatusCode)
	}
}

func TestBinaryFormExchangeReturnTo(t *testing.T) {
	g, _ := startCore(t, "")
	post := func(form url.Values) *http.Response {
		resp, err := g.Client().PostForm(g.URL("portal.gate.test", "/.embed/exchange"), form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	tok := mint(t, "acme", acmeSecret, "jane@acme.com", nil)
	if r := post(url.Values{"token": {tok}, "return_to": {"https://evil.test/"}}); r.StatusCode != 400 {
		t.Fatalf("foreign return_to: %d", r.StatusCode)
	}
	// Nothing was applied: the same token still exchanges.
	r := post(url.Values{"token": {tok}, "return_to": {"/deals?tab=2"}})
	if r.StatusCode != 303 || r.Header.Get("Location") != "/deals?tab=2" {
		t.Fatalf("form exchange: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	sessionCookie(t, r)
}

// Secrets resolve from {file.*}; the identity placeholders are set for the
// rest of the route, e.g. reverse_proxy's header_up.
func TestBinaryFileSecretAndPlaceholders(t *testing.T) {
	up := newUpstream(t, nil)
	secretFile := filepath.Join(t.TempDir(), "acme.secret")
	if err := os.WriteFile(secretFile, []byte(acmeSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const site = `
portal.gate.test:{{.HTTPSPort}} {
	tls internal
	embed_session {
		tenant acme {
			key {file.{{.SecretFile}}}
			frame_ancestors https://app.acme.test
		}
		forward_claim org.id X-Embed-Org
	}
	reverse_proxy {{.Upstream}} {
		header_up X-Seen-User {http.auth.user.id}
		header_up X-Seen-Tenant {http.embed.tenant}
		header_up X-Seen-Org {http.embed.claim.org.id}
	}
}
`
	g := startGateway(t, site, map[string]any{"Upstream": up.Listener.Addr().String(), "SecretFile": secretFile}, GatewayOptions{})
	tok := mint(t, "acme", acmeSecret, "jane@acme.com", map[string]any{"org": map[string]any{"id": "org-7"}})
	c := sessionCookie(t, exchangeJSON(t, g, "portal.gate.test", tok))
	if r, _ := get(t, g, "portal.gate.test", "/x", nil, c); r.StatusCode != 200 {
		t.Fatalf("status %d", r.StatusCode)
	}
	h := up.Last().Header
	for name, want := range map[string]string{"X-Seen-User": "jane@acme.com", "X-Seen-Tenant": "acme", "X-Seen-Org": "org-7"} {
		if got := h.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}
