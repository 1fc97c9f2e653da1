package gateway

// Unit tests of the browser kit's server side: the start, gate and asset
// pages, Storage Access headers, and inject_bridge with its CSP handling.
// Internal to the package so that they share no helpers with the black-box
// suite in gateway_test.

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/bridge"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/tenant"
)

const (
	bkAcmeOrigin  = "https://app.acme.test"
	bkAcmeOrigin2 = "https://www.acme.test"
	bkAcmeHost    = "acme.gate.test"
	bkPortal      = "portal.gate.test"
	bkCookie      = "__Host-embed_session"
)

type bkEnv struct {
	t      *testing.T
	g      *Gateway
	sealer *session.Sealer
	now    time.Time
}

func newBKEnv(t *testing.T, inject bool) *bkEnv {
	t.Helper()
	reg, err := tenant.NewRegistry([]tenant.Config{
		{ID: "acme", Keys: []tenant.SecretConfig{{Secret: strings.Repeat("a", 32)}},
			FrameAncestors: []string{bkAcmeOrigin, bkAcmeOrigin2}, Hosts: []string{bkAcmeHost}},
		{ID: "globex", Keys: []tenant.SecretConfig{{Secret: strings.Repeat("g", 32)}},
			FrameAncestors: []string{"https://globex.test"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := session.NewSealer(bkCookie, [][]byte{[]byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0).UTC()
	mem := replay.NewMemory(func() time.Time { return now })
	t.Cleanup(mem.Close)
	g, err := New(Config{
		Tenants: func() *tenant.Registry { return reg }, Sealer: sealer, Replay: mem, Revocations: mem,
		SessionTTL: 8 * time.Hour, IdleTimeout: 30 * time.Minute, MaxTokenAge: 2 * time.Minute, Leeway: 30 * time.Second,
		CookieName: bkCookie, Prefix: "/.embed", TokenParam: "embed_token", InjectBridge: inject,
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return &bkEnv{t: t, g: g, sealer: sealer, now: now}
}

// cookie seals a session of acme bound to origin, issued ago before now.
func (e *bkEnv) cookie(origin string, ago time.Duration) string {
	e.t.Helper()
	iat := e.now.Add(-ago)
	v, err := e.sealer.Seal(&session.Session{ID: "c2Vzc2lvbi1pZC0xMjM0NTY3OA", Tenant: "acme", Subject: "jane@acme.test",
		Origin: origin, IssuedAt: iat, LastSeen: iat, ExpiresAt: iat.Add(8 * time.Hour)}, "portal.gate.test")
	if err != nil {
		e.t.Fatal(err)
	}
	return bkCookie + "=" + v
}

type bkReq struct {
	method, host, target string
	hdr                  map[string]string
}

func (e *bkEnv) do(q bkReq, upstream http.HandlerFunc) *httptest.ResponseRecorder {
	e.t.Helper()
	if q.method == "" {
		q.method = "GET"
	}
	if q.host == "" {
		q.host = bkPortal
	}
	r := httptest.NewRequest(q.method, "https://"+q.host+q.target, nil)
	r.TLS = &tls.ConnectionState{}
	for k, v := range q.hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	err := e.g.ServeHTTP(w, r, func(w http.ResponseWriter, r *http.Request) error {
		if upstream == nil {
			e.t.Fatalf("request %s %s reached the upstream", q.method, q.target)
		}
		upstream(w, r)
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

var (
	bkDataBlock = regexp.MustCompile(`(?s)<script type="application/json" id="embedgate-config">(.*?)</script>`)
	bkBridgeCfg = regexp.MustCompile(`const CONFIG = (\{.*?\});`)
)

func pageConfig(t *testing.T, body string) bridge.PageConfig {
	t.Helper()
	m := bkDataBlock.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no data block in:\n%s", body)
	}
	var c bridge.PageConfig
	if err := json.Unmarshal([]byte(m[1]), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func checkPageHeaders(t *testing.T, w *httptest.ResponseRecorder, status int, framing string) {
	t.Helper()
	h := w.Header()
	if w.Code != status {
		t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body)
	}
	if h.Get("Content-Type") != "text/html; charset=utf-8" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("headers: %v", h)
	}
	if h.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control = %q", h.Get("Cache-Control"))
	}
	csp := h.Values("Content-Security-Policy")
	if len(csp) != 1 || csp[0] != bridge.PageCSP()+"; "+framing {
		t.Fatalf("CSP = %q", csp)
	}
	if strings.Contains(csp[0], "unsafe-inline") || !strings.Contains(csp[0], "script-src 'sha256-") {
		t.Fatalf("CSP must allow the script by hash only: %q", csp[0])
	}
	if h.Get("Content-Length") != strconv.Itoa(w.Body.Len()) {
		t.Fatalf("Content-Length %q for %d bytes", h.Get("Content-Length"), w.Body.Len())
	}
}

func TestStartPage(t *testing.T) {
	e := newBKEnv(t, false)
	w := e.do(bkReq{target: "/.embed/start?tenant=acme&next=%2Fdeals%3Ftab%3D2"}, nil)
	checkPageHeaders(t, w, 200, "frame-ancestors https://app.acme.test https://www.acme.test")
	c := pageConfig(t, w.Body.String())
	if c.Page != "start" || c.Tenant != "acme" || c.Next != "/deals?tab=2" || c.Prefix != "/.embed" ||
		strings.Join(c.Origins, " ") != bkAcmeOrigin+" "+bkAcmeOrigin2 || c.Bound != "" {
		t.Fatalf("config = %+v", c)
	}

	// next must be a same-origin path outside the prefix.
	for _, next := range []string{"//evil.test/x", "/\\evil.test", "https://evil.test/", "javascript:alert(1)", "/.embed/signout", ""} {
		w := e.do(bkReq{target: "/.embed/start?tenant=acme&next=" + urlQueryEscape(next)}, nil)
		if c := pageConfig(t, w.Body.String()); c.Next != "/" {
			t.Fatalf("next %q kept as %q", next, c.Next)
		}
	}
	// On a tenant host, ?tenant= may be left out, and must match.
	if w := e.do(bkReq{host: bkAcmeHost, target: "/.embed/start?next=/x"}, nil); w.Code != 200 || pageConfig(t, w.Body.String()).Tenant != "acme" {
		t.Fatalf("tenant host: %d", w.Code)
	}
	for _, tc := range []struct{ host, target string }{
		{bkPortal, "/.embed/start?tenant=nope"},
		{bkPortal, "/.embed/start"},
		{bkAcmeHost, "/.embed/start?tenant=globex"},
	} {
		// An HTML page that stops with embed:error wrong_tenant, never JSON
		// (more in TestStartPageWrongTenantIsHTML).
		w := e.do(bkReq{host: tc.host, target: tc.target}, nil)
		if w.Code != 400 || w.Header().Get("Content-Type") != "text/html; charset=utf-8" || pageConfig(t, w.Body.String()).Error != "wrong_tenant" {
			t.Fatalf("%s%s: %d %s", tc.host, tc.target, w.Code, w.Body)
		}
		if want := bridge.PageCSP() + "; frame-ancestors 'none'"; tc.host == bkPortal && w.Header().Get("Content-Security-Policy") != want {
			t.Fatalf("%s: CSP %q", tc.target, w.Header().Get("Content-Security-Policy"))
		}
	}
	if w := e.do(bkReq{method: "POST", target: "/.embed/start?tenant=acme"}, nil); w.Code != 405 || w.Header().Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST start: %d", w.Code)
	}
}

func urlQueryEscape(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "+", "%2B", " ", "%20", "?", "%3F")
	return r.Replace(s)
}

func TestGatePageTellsTheHost(t *testing.T) {
	e := newBKEnv(t, false)
	nav := map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "cross-site"}

	// No cookie, tenant host: every allowlisted origin, none bound.
	w := e.do(bkReq{host: bkAcmeHost, target: "/deals?x=1", hdr: nav}, nil)
	checkPageHeaders(t, w, 401, "frame-ancestors https://app.acme.test https://www.acme.test")
	body := w.Body.String()
	if !strings.Contains(body, `<meta name="embedgate-reason" content="session_missing">`) {
		t.Fatalf("gate page does not name its reason:\n%s", body)
	}
	c := pageConfig(t, body)
	if c.Page != "gate" || c.Tenant != "acme" || c.Reason != "session_missing" || c.Bound != "" || len(c.Origins) != 2 {
		t.Fatalf("config = %+v", c)
	}
	if c.Next != "/deals?x=1" {
		t.Fatalf("next = %q", c.Next)
	}
	// A failed ?embed_token= shows the gate too; its next drops the token.
	w = e.do(bkReq{host: bkAcmeHost, target: "/deals?x=1&embed_token=abc", hdr: nav}, nil)
	if c := pageConfig(t, w.Body.String()); w.Code != 401 || c.Reason != "malformed" || c.Next != "/deals?x=1" {
		t.Fatalf("token failure: %d %+v", w.Code, c)
	}

	// An expired cookie names the origin it was bound to.
	nav2 := map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe", "Cookie": e.cookie(bkAcmeOrigin2, 9*time.Hour)}
	w = e.do(bkReq{target: "/deals", hdr: nav2}, nil)
	c = pageConfig(t, w.Body.String())
	if w.Code != 401 || c.Reason != "session_expired" || c.Bound != bkAcmeOrigin2 {
		t.Fatalf("expired cookie: %d %+v", w.Code, c)
	}

	// No tenant known: framed by nobody, tells nobody.
	w = e.do(bkReq{target: "/x", hdr: nav}, nil)
	checkPageHeaders(t, w, 401, "frame-ancestors 'none'")
	if c := pageConfig(t, w.Body.String()); len(c.Origins) != 0 || c.Bound != "" || c.Next != "/x" {
		t.Fatalf("no tenant: %+v", c)
	}
}

func TestStorageAccessRetry(t *testing.T) {
	e := newBKEnv(t, false)
	base := func(status, origin string) map[string]string {
		return map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "cross-site",
			"Sec-Fetch-Storage-Access": status, "Origin": origin}
	}
	for _, tc := range []struct {
		name, host, target string
		hdr                map[string]string
		want               string
	}{
		{"gate, inactive, allowlisted", bkAcmeHost, "/deals", base("inactive", bkAcmeOrigin2), `retry; allowed-origin="https://www.acme.test"`},
		{"start, inactive, allowlisted", bkPortal, "/.embed/start?tenant=acme", base("inactive", bkAcmeOrigin), `retry; allowed-origin="https://app.acme.test"`},
		{"stranger origin", bkAcmeHost, "/deals", base("inactive", "https://evil.test"), ""},
		{"already active: load (TestStorageAccessLoad)", bkAcmeHost, "/deals", base("active", bkAcmeOrigin), "load"},
		{"no grant", bkAcmeHost, "/deals", base("none", bkAcmeOrigin), ""},
		{"no Origin", bkAcmeHost, "/deals", base("inactive", ""), ""},
		{"no tenant known", bkPortal, "/deals", base("inactive", bkAcmeOrigin), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.hdr["Origin"] == "" {
				delete(tc.hdr, "Origin")
			}
			w := e.do(bkReq{host: tc.host, target: tc.target, hdr: tc.hdr}, nil)
			if got := w.Header().Get("Activate-Storage-Access"); got != tc.want {
				t.Fatalf("Activate-Storage-Access = %q, want %q", got, tc.want)
			}
			if tc.host == bkAcmeHost || strings.Contains(tc.target, "start") {
				if v := w.Header().Values("Vary"); len(v) == 0 || v[len(v)-1] != "Sec-Fetch-Storage-Access" {
					t.Fatalf("Vary = %q", v)
				}
			}
		})
	}
	// A request that carries a cookie already gets no retry.
	hdr := base("inactive", bkAcmeOrigin)
	hdr["Cookie"] = e.cookie(bkAcmeOrigin, 9*time.Hour)
	if w := e.do(bkReq{host: bkAcmeHost, target: "/deals", hdr: hdr}, nil); w.Header().Get("Activate-Storage-Access") != "" {
		t.Fatal("retry asked although the cookie came")
	}
}

func TestAssets(t *testing.T) {
	e := newBKEnv(t, false)
	w := e.do(bkReq{target: "/.embed/sdk.js"}, nil)
	h := w.Header()
	if w.Code != 200 || h.Get("Content-Type") != "text/javascript; charset=utf-8" || h.Get("X-Content-Type-Options") != "nosniff" ||
		h.Get("Cache-Control") != "public, max-age=300" || h.Get("Access-Control-Allow-Origin") != "*" || h.Get("ETag") == "" {
		t.Fatalf("sdk.js: %d %v", w.Code, h)
	}
	if !bytes.Equal(w.Body.Bytes(), bridge.SDK("/.embed")) {
		t.Fatal("sdk.js body")
	}
	if w2 := e.do(bkReq{target: "/.embed/sdk.js", hdr: map[string]string{"If-None-Match": h.Get("ETag")}}, nil); w2.Code != 304 || w2.Body.Len() != 0 {
		t.Fatalf("revalidation: %d", w2.Code)
	}
	if w := e.do(bkReq{target: "/.embed/sdk.d.ts"}, nil); w.Code != 200 || !strings.Contains(w.Body.String(), "interface MountOptions") ||
		w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("sdk.d.ts: %d", w.Code)
	}
	if w := e.do(bkReq{method: "POST", target: "/.embed/sdk.js"}, nil); w.Code != 405 {
		t.Fatalf("POST sdk.js: %d", w.Code)
	}
	if w := e.do(bkReq{target: "/.embed/nope.js"}, nil); w.Code != 404 {
		t.Fatalf("unknown asset: %d", w.Code)
	}

	bridgeOrigins := func(q bkReq) []string {
		t.Helper()
		w := e.do(q, nil)
		if w.Code != 200 || w.Header().Get("Cache-Control") != "private, no-cache" || w.Header().Get("Vary") != "Cookie, Sec-Fetch-Site" ||
			w.Header().Get("Cross-Origin-Resource-Policy") != "same-origin" ||
			w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
			t.Fatalf("bridge.js: %d %v", w.Code, w.Header())
		}
		m := bkBridgeCfg.FindStringSubmatch(w.Body.String())
		var c bridge.BridgeConfig
		if m == nil || json.Unmarshal([]byte(m[1]), &c) != nil {
			t.Fatal("bridge.js config unreadable")
		}
		return c.Origins
	}
	// A live session: only the bound origin.
	if got := bridgeOrigins(bkReq{target: "/.embed/bridge.js", hdr: map[string]string{"Cookie": e.cookie(bkAcmeOrigin2, time.Minute)}}); strings.Join(got, " ") != bkAcmeOrigin2 {
		t.Fatalf("bound session: %q", got)
	}
	// A session without a bound origin, or a tenant host: the allowlist.
	if got := bridgeOrigins(bkReq{target: "/.embed/bridge.js", hdr: map[string]string{"Cookie": e.cookie("", time.Minute)}}); len(got) != 2 {
		t.Fatalf("unbound session: %q", got)
	}
	if got := bridgeOrigins(bkReq{host: bkAcmeHost, target: "/.embed/bridge.js"}); len(got) != 2 {
		t.Fatalf("tenant host: %q", got)
	}
	// Nobody known: nobody.
	if got := bridgeOrigins(bkReq{target: "/.embed/bridge.js"}); len(got) != 0 {
		t.Fatalf("no tenant: %q", got)
	}
}

// Cross-site script inclusion of the session's data: a stranger's frame
// on the customer's page shares the embed's partitioned cookie, and a
// <script src=bridge.js> there (window.parent shadowed) would be handed the
// signed-in user's sub; so would a read of {prefix}/session. A page of
// another site (Sec-Fetch-Site cross-site or same-site) gets 403
// cross_origin with nothing of the session; the app's own pages (same-origin),
// a typed URL (none) and clients that send no Fetch Metadata are served,
// with Cross-Origin-Resource-Policy: same-origin for browsers without it.
func TestSessionDataRefusedToOtherSites(t *testing.T) {
	e := newBKEnv(t, false)
	for _, target := range []string{"/.embed/bridge.js", "/.embed/session"} {
		for _, site := range []string{"cross-site", "same-site", "Cross-Site"} {
			w := e.do(bkReq{target: target, hdr: map[string]string{"Cookie": e.cookie(bkAcmeOrigin, time.Minute), "Sec-Fetch-Site": site}}, nil)
			if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), `"error_description":"cross_origin"`) {
				t.Errorf("%s from %s: %d %s, want 403 cross_origin", target, site, w.Code, w.Body)
			}
			if strings.Contains(w.Body.String(), "jane@acme.test") || w.Header().Get("Cross-Origin-Resource-Policy") != "same-origin" ||
				w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("%s from %s: the refusal %v %s", target, site, w.Header(), w.Body)
			}
		}
		for _, site := range []string{"same-origin", "none", ""} {
			hdr := map[string]string{"Cookie": e.cookie(bkAcmeOrigin, time.Minute)}
			if site != "" {
				hdr["Sec-Fetch-Site"] = site
			}
			w := e.do(bkReq{target: target, hdr: hdr}, nil)
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "jane@acme.test") ||
				w.Header().Get("Cross-Origin-Resource-Policy") != "same-origin" {
				t.Errorf("%s with Sec-Fetch-Site %q: %d %v", target, site, w.Code, w.Header())
			}
		}
	}
}

var bkFixedNonce = func() string { return "R4nd0mN0nce" }

// bkSrcURL is the bridge script's exact URL on bkPortal over TLS.
const bkSrcURL = "https://portal.gate.test/.embed/bridge.js"

func TestAllowBridgeScript(t *testing.T) {
	const fresh = "'nonce-R4nd0mN0nce'"
	for _, tc := range []struct {
		name       string
		csp        []string
		reportOnly []string
		srcURL     string // "" means bkSrcURL; "-" means none
		wantNonce  string
		wantOK     bool
		wantCSP    []string // nil: unchanged
		wantRO     []string // nil: unchanged
	}{
		{name: "no CSP", wantOK: true},
		{name: "no script directive", csp: []string{"frame-ancestors 'self'; img-src *"}, wantOK: true},
		{name: "self already allows", csp: []string{"default-src 'self'"}, wantOK: true},
		{name: "https scheme already allows, unsafe-inline kept on", csp: []string{"script-src https: 'unsafe-inline'"}, wantOK: true},
		{name: "https scheme on an http page gets a nonce", csp: []string{"script-src https:"}, srcURL: "http://portal.gate.test/.embed/bridge.js",
			wantNonce: "R4nd0mN0nce", wantOK: true, wantCSP: []string{"script-src https: " + fresh}},

		// A nonce already there is reused and nothing changes.
		{name: "nonce reused", csp: []string{"script-src 'nonce-abc123' 'strict-dynamic'; object-src 'none'"}, wantNonce: "abc123", wantOK: true},
		{name: "nonce in default-src reused", csp: []string{"default-src 'nonce-abc123'"}, wantNonce: "abc123", wantOK: true},
		{name: "nonce beside unsafe-inline reused", csp: []string{"script-src 'unsafe-inline' 'nonce-abc123'"}, wantNonce: "abc123", wantOK: true},
		{name: "malformed nonce not reused", csp: []string{`script-src 'nonce-a"b' 'strict-dynamic'`}, wantNonce: "R4nd0mN0nce", wantOK: true,
			wantCSP: []string{`script-src 'nonce-a"b' 'strict-dynamic' ` + fresh}},

		// 'strict-dynamic': a fresh nonce, whatever else is there.
		{name: "strict-dynamic with hashes gets a nonce", csp: []string{"script-src 'strict-dynamic' 'sha256-AAAA'; base-uri 'none'"},
			wantNonce: "R4nd0mN0nce", wantOK: true, wantCSP: []string{"script-src 'strict-dynamic' 'sha256-AAAA' " + fresh + "; base-uri 'none'"}},
		{name: "strict-dynamic ignores self", csp: []string{"script-src 'self' 'strict-dynamic' 'sha256-AAAA'"},
			wantNonce: "R4nd0mN0nce", wantOK: true, wantCSP: []string{"script-src 'self' 'strict-dynamic' 'sha256-AAAA' " + fresh}},
		{name: "strict-dynamic with unsafe-inline gets a nonce, not the URL", csp: []string{"script-src 'strict-dynamic' 'unsafe-inline' https://cdn.example"},
			wantNonce: "R4nd0mN0nce", wantOK: true, wantCSP: []string{"script-src 'strict-dynamic' 'unsafe-inline' https://cdn.example " + fresh}},

		// 'unsafe-inline' alone: the exact URL, never a nonce, never 'self'.
		{name: "unsafe-inline gets the exact URL", csp: []string{"script-src 'unsafe-inline' https://cdn.example"}, wantOK: true,
			wantCSP: []string{"script-src 'unsafe-inline' https://cdn.example " + bkSrcURL}},
		{name: "unsafe-inline beside a malformed nonce gets the URL", csp: []string{"script-src 'unsafe-inline' 'nonce-'"}, wantOK: true,
			wantCSP: []string{"script-src 'unsafe-inline' 'nonce-' " + bkSrcURL}},
		{name: "unsafe-inline with a port", csp: []string{"script-src 'unsafe-inline'"}, srcURL: "https://portal.gate.test:8443/.embed/bridge.js", wantOK: true,
			wantCSP: []string{"script-src 'unsafe-inline' https://portal.gate.test:8443/.embed/bridge.js"}},
		{name: "unsafe-inline, URL unwritable: no injection", csp: []string{"script-src 'unsafe-inline'"}, srcURL: "-"},
		{name: "unsafe-inline beside a hash is off already: nonce", csp: []string{"script-src 'unsafe-inline' 'sha256-AAAA'"},
			wantNonce: "R4nd0mN0nce", wantOK: true, wantCSP: []string{"script-src 'unsafe-inline' 'sha256-AAAA' " + fresh}},

		// Hashes and host lists: a nonce, never 'self'.
		{name: "hash-only gets a nonce", csp: []string{"script-src 'sha256-AAAA'"}, wantNonce: "R4nd0mN0nce", wantOK: true,
			wantCSP: []string{"script-src 'sha256-AAAA' " + fresh}},
		{name: "host list gets a nonce", csp: []string{"script-src https://cdn.example https://portal.gate.test/app/"}, wantNonce: "R4nd0mN0nce", wantOK: true,
			wantCSP: []string{"script-src https://cdn.example https://portal.gate.test/app/ " + fresh}},
		{name: "script-src-elem governs", csp: []string{"script-src-elem 'sha256-AAAA'; script-src 'none'"}, wantNonce: "R4nd0mN0nce", wantOK: true,
			wantCSP: []string{"script-src-elem 'sha256-AAAA' " + fresh + "; script-src 'none'"}},
		{name: "script-src-elem allowing self", csp: []string{"script-src-elem 'self'; script-src 'none'"}, wantOK: true},

		// 'none': no script.
		{name: "scripts none: no injection", csp: []string{"script-src 'none'"}},
		{name: "empty script-src: no injection", csp: []string{"script-src; img-src *"}},
		{name: "default-src none: no injection", csp: []string{"default-src 'none'; img-src 'self'"}},
		{name: "script-src-elem none: no injection", csp: []string{"script-src-elem 'none'; script-src 'self'"}},

		// Only default-src: a new script-src copying it, default-src untouched.
		{name: "default-src hosts copied into script-src", csp: []string{"default-src https://cdn.example 'sha256-AAAA'; style-src 'self'"},
			wantNonce: "R4nd0mN0nce", wantOK: true,
			wantCSP: []string{"default-src https://cdn.example 'sha256-AAAA'; style-src 'self'; script-src https://cdn.example 'sha256-AAAA' " + fresh}},
		{name: "default-src unsafe-inline copied with the URL", csp: []string{"default-src https://cdn.example 'unsafe-inline'"}, wantOK: true,
			wantCSP: []string{"default-src https://cdn.example 'unsafe-inline'; script-src https://cdn.example 'unsafe-inline' " + bkSrcURL}},

		// Several policies: each must allow the tag.
		{name: "two headers, one nonce, the other allows self", csp: []string{"script-src 'nonce-abc'", "script-src 'self'"}, wantNonce: "abc", wantOK: true},
		// The app's nonce is never added to an enforced policy that lacks
		// it: its scripts tagged with it, which that policy blocked, would
		// run. A fresh nonce goes to both.
		{name: "two headers, the nonce not held by the hash policy", csp: []string{"script-src 'sha256-AAAA'", "script-src 'nonce-abc' 'strict-dynamic'"},
			wantNonce: "R4nd0mN0nce", wantOK: true, wantCSP: []string{"script-src 'sha256-AAAA' " + fresh, "script-src 'nonce-abc' 'strict-dynamic' " + fresh}},
		{name: "two nonces: a fresh one for both", csp: []string{"script-src 'nonce-aaa'", "script-src 'nonce-bbb' 'strict-dynamic'"},
			wantNonce: "R4nd0mN0nce", wantOK: true, wantCSP: []string{"script-src 'nonce-aaa' " + fresh, "script-src 'nonce-bbb' 'strict-dynamic' " + fresh}},
		{name: "one nonce in two policies: reused", csp: []string{"script-src 'nonce-aaa'", "script-src 'nonce-aaa' 'strict-dynamic'; img-src *"},
			wantNonce: "aaa", wantOK: true},
		{name: "a nonce beside a policy that needs none: reused", csp: []string{"script-src 'nonce-aaa'", "script-src *"},
			wantNonce: "aaa", wantOK: true},
		{name: "two headers, unsafe-inline and hash", csp: []string{"script-src 'unsafe-inline'", "default-src 'sha256-AAAA'"},
			wantNonce: "R4nd0mN0nce", wantOK: true,
			wantCSP: []string{"script-src 'unsafe-inline' " + bkSrcURL, "default-src 'sha256-AAAA'; script-src 'sha256-AAAA' " + fresh}},
		{name: "two headers, one none: no injection", csp: []string{"script-src 'sha256-AAAA'", "default-src 'none'"}},
		{name: "comma-separated policies keep one header", csp: []string{"default-src 'self', script-src 'unsafe-inline'"}, wantOK: true,
			wantCSP: []string{"default-src 'self', script-src 'unsafe-inline' " + bkSrcURL}},

		// Report-only: the same additions; it never stops the injection.
		{name: "report-only gets the same nonce", csp: []string{"script-src 'sha256-AAAA'"}, reportOnly: []string{"script-src 'sha256-BBBB'"},
			wantNonce: "R4nd0mN0nce", wantOK: true, wantCSP: []string{"script-src 'sha256-AAAA' " + fresh}, wantRO: []string{"script-src 'sha256-BBBB' " + fresh}},
		{name: "report-only alone", reportOnly: []string{"default-src 'self'; script-src 'unsafe-inline'"}, wantOK: true,
			wantRO: []string{"default-src 'self'; script-src 'unsafe-inline' " + bkSrcURL}},
		// A trial policy's nonce is not made one the enforced policy allows.
		{name: "report-only nonce not added to the enforced policy", csp: []string{"script-src 'strict-dynamic'"}, reportOnly: []string{"script-src 'nonce-ro1' 'strict-dynamic'"},
			wantNonce: "R4nd0mN0nce", wantOK: true, wantCSP: []string{"script-src 'strict-dynamic' " + fresh},
			wantRO: []string{"script-src 'nonce-ro1' 'strict-dynamic' " + fresh}},
		{name: "report-only nonce reused where nothing is enforced", reportOnly: []string{"script-src 'nonce-ro1' 'strict-dynamic'"},
			wantNonce: "ro1", wantOK: true},
		{name: "report-only none does not stop it", csp: []string{"script-src 'self'"}, reportOnly: []string{"script-src 'none'"}, wantOK: true},
		{name: "enforced none: report-only untouched too", csp: []string{"script-src 'none'"}, reportOnly: []string{"script-src 'sha256-BBBB'"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.csp != nil {
				h[cspHeader] = append([]string(nil), tc.csp...)
			}
			if tc.reportOnly != nil {
				h[cspReportOnlyHeader] = append([]string(nil), tc.reportOnly...)
			}
			src := tc.srcURL
			switch src {
			case "":
				src = bkSrcURL
			case "-":
				src = ""
			}
			nonce, ok := allowBridgeScript(h, src, bkFixedNonce)
			if nonce != tc.wantNonce || ok != tc.wantOK {
				t.Fatalf("got (%q, %v), want (%q, %v)", nonce, ok, tc.wantNonce, tc.wantOK)
			}
			for _, c := range []struct {
				key        string
				was, wants []string
			}{{cspHeader, tc.csp, tc.wantCSP}, {cspReportOnlyHeader, tc.reportOnly, tc.wantRO}} {
				want := c.wants
				if want == nil {
					want = c.was
				}
				if got := h[c.key]; strings.Join(got, "|") != strings.Join(want, "|") {
					t.Fatalf("%s\n got %q\nwant %q", c.key, got, want)
				}
				for _, v := range h[c.key] {
					if strings.Contains(v, "'self'") && !strings.Contains(strings.Join(c.was, "|"), "'self'") {
						t.Fatalf("%s gained 'self': %q", c.key, v)
					}
				}
			}
		})
	}
}

func TestNewNonce(t *testing.T) {
	a, b := newNonce(), newNonce()
	raw, err := base64.StdEncoding.DecodeString(a)
	if err != nil || len(raw) < 16 || !validNonce(a) {
		t.Fatalf("nonce %q: %d bytes, %v", a, len(raw), err)
	}
	if a == b {
		t.Fatal("two nonces alike")
	}
}

func TestCSPSourceURL(t *testing.T) {
	for _, tc := range []struct{ origin, path, want string }{
		{"https://portal.gate.test", "/.embed/bridge.js", "https://portal.gate.test/.embed/bridge.js"},
		{"http://127.0.0.1:8080", "/.embed/bridge.js", "http://127.0.0.1:8080/.embed/bridge.js"},
		{"https://[::1]:8443", "/.embed/bridge.js", ""},                          // no IPv6 in CSP host-source
		{"https://a.test;script-src", "/.embed/bridge.js", ""},                   // a directive smuggled in the Host
		{"https://a.test,script-src", "/.embed/bridge.js", ""},                   // a policy smuggled in the Host
		{"https://a.test:", "/.embed/bridge.js", ""},                             // empty port
		{"https://a..test", "/.embed/bridge.js", ""},                             // empty label
		{"https://a.test", "/x;y/bridge.js", ""},                                 // ; in the path
		{"https://a.test", "/x y/bridge.js", ""},                                 // space in the path
		{"ftp://a.test", "/.embed/bridge.js", ""},                                // not http(s)
		{"https://a.test", "/a%20b/bridge.js", "https://a.test/a%20b/bridge.js"}, // escapes pass
	} {
		if got := cspSourceURL(tc.origin, tc.path); got != tc.want {
			t.Errorf("cspSourceURL(%q, %q) = %q, want %q", tc.origin, tc.path, got, tc.want)
		}
	}
}

func TestInjectBridge(t *testing.T) {
	page := "<!doctype html><html><head><title>x</title></head><body><h1>Deals</h1></BODY></html>"
	type upstreamResp struct {
		status int
		hdr    map[string]string
		chunks []string
		flush  bool
	}
	serve := func(u upstreamResp) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			for k, v := range u.hdr {
				w.Header().Set(k, v)
			}
			if u.status != 0 {
				w.WriteHeader(u.status)
			}
			for _, c := range u.chunks {
				_, _ = io.WriteString(w, c)
				if u.flush {
					_ = http.NewResponseController(w).Flush()
				}
			}
		}
	}
	html := map[string]string{"Content-Type": "text/html; charset=utf-8"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{"Content-Type": "text/html; charset=utf-8"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tag := `<script src="https://portal.gate.test/.embed/bridge.js" defer></script>`
	injected := strings.Replace(page, "</BODY>", tag+"</BODY>", 1)
	big := strings.Repeat("x", maxInjectBody)
	// User text in a JSON block after </body>, escaped only for </script.
	const dataBlockPage = `<body>x</body><script type="application/json">{"c":"</body><img src=x onerror=alert(1)>"}</script>`
	const framing = "frame-ancestors https://app.acme.test https://www.acme.test"
	// Request headers over the default (an iframe navigation); "" deletes.
	fetchFragment := map[string]string{"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty", "Accept": "text/html"}
	for _, tc := range []struct {
		name     string
		inject   bool
		method   string
		req      map[string]string
		resp     upstreamResp
		wantBody string
		wantCSP  string // "" skips the check
		wrapped  bool   // the upstream must see a wrapped writer (buffered, no Accept-Encoding)
	}{
		{"injected before </body>", true, "GET", nil, upstreamResp{hdr: html, chunks: []string{page}}, injected, framing, true},
		{"streamed with flushes", true, "GET", nil, upstreamResp{hdr: html, chunks: []string{page[:20], page[20:]}, flush: true}, injected, "", true},
		{"no </body>: appended", true, "GET", nil, upstreamResp{hdr: html, chunks: []string{"<p>hi"}}, "<p>hi" + tag, "", true},
		{"</body> in a data block: before the real one", true, "GET", nil, upstreamResp{hdr: html, chunks: []string{dataBlockPage}},
			strings.Replace(dataBlockPage, "</body><script", tag+"</body><script", 1), "", true},
		{"cut off in raw text: untouched, CSP too", true, "GET", nil, upstreamResp{hdr: with(map[string]string{"Content-Security-Policy": "script-src 'unsafe-inline'"}), chunks: []string{`<script type="application/json">"</body>`}},
			`<script type="application/json">"</body>`, "script-src 'unsafe-inline'; " + framing, true},
		{"nonce reused", true, "GET", nil, upstreamResp{hdr: with(map[string]string{"Content-Security-Policy": "script-src 'nonce-n0nce' 'strict-dynamic'; frame-ancestors *"}), chunks: []string{page}},
			strings.Replace(page, "</BODY>", `<script src="https://portal.gate.test/.embed/bridge.js" defer nonce="n0nce"></script></BODY>`, 1),
			"script-src 'nonce-n0nce' 'strict-dynamic'; " + framing, true},
		{"unsafe-inline: exact URL added", true, "POST", nil, upstreamResp{hdr: with(map[string]string{"Content-Security-Policy": "script-src 'unsafe-inline'"}), chunks: []string{page}, status: 404},
			injected, "script-src 'unsafe-inline' " + bkSrcURL + "; " + framing, true},
		{"scripts none: untouched", true, "GET", nil, upstreamResp{hdr: with(map[string]string{"Content-Security-Policy": "script-src 'none'"}), chunks: []string{page}}, page, "script-src 'none'; " + framing, true},
		{"default-src none: untouched", true, "GET", nil, upstreamResp{hdr: with(map[string]string{"Content-Security-Policy": "default-src 'none'"}), chunks: []string{page}}, page, "default-src 'none'; " + framing, true},
		{"gzip: untouched", true, "GET", nil, upstreamResp{hdr: with(map[string]string{"Content-Encoding": "gzip"}), chunks: []string{page}}, page, "", true},
		{"json: untouched", true, "GET", nil, upstreamResp{hdr: map[string]string{"Content-Type": "application/json"}, chunks: []string{`{"a":"</body>"}`}}, `{"a":"</body>"}`, "", true},
		{"304: untouched", true, "GET", nil, upstreamResp{hdr: html, status: 304}, "", "", true},
		{"204: untouched", true, "GET", nil, upstreamResp{hdr: html, status: 204}, "", "", true},
		{"HEAD: untouched", true, "HEAD", nil, upstreamResp{hdr: html}, "", "", false},
		{"too large: untouched and whole", true, "GET", nil, upstreamResp{hdr: html, chunks: []string{big[:1000], big[1000:], "</body>"}}, big + "</body>", "", true},
		{"declared too large: untouched", true, "GET", nil, upstreamResp{hdr: with(map[string]string{"Content-Length": strconv.Itoa(maxInjectBody + 1)}), chunks: []string{"</body>"}}, "</body>", "", true},
		{"inject_bridge off", false, "GET", nil, upstreamResp{hdr: html, chunks: []string{page}}, page, "", false},

		// Only document loads: fragments stream through as they are.
		{"fetch fragment: untouched, streamed", true, "GET", fetchFragment, upstreamResp{hdr: html, chunks: []string{page[:20], page[20:]}, flush: true}, page, framing, false},
		{"htmx POST fragment: untouched", true, "POST", fetchFragment, upstreamResp{hdr: with(map[string]string{"Content-Security-Policy": "script-src 'sha256-AAAA'"}), chunks: []string{page}},
			page, "script-src 'sha256-AAAA'; " + framing, false},
		{"navigate into <object>: untouched", true, "GET", map[string]string{"Sec-Fetch-Dest": "object"}, upstreamResp{hdr: html, chunks: []string{page}}, page, "", false},
		{"no fetch metadata, Accept */*: untouched", true, "GET", map[string]string{"Sec-Fetch-Mode": "", "Sec-Fetch-Dest": "", "Accept": "*/*"},
			upstreamResp{hdr: html, chunks: []string{page}}, page, "", false},
		{"no fetch metadata, Accept text/html: injected", true, "GET", map[string]string{"Sec-Fetch-Mode": "", "Sec-Fetch-Dest": "", "Accept": "text/html,*/*;q=0.8"},
			upstreamResp{hdr: html, chunks: []string{page}}, injected, "", true},
		{"top-level document: injected", true, "GET", map[string]string{"Sec-Fetch-Dest": "document"}, upstreamResp{hdr: html, chunks: []string{page}}, injected, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newBKEnv(t, tc.inject)
			var seenAE string
			var seenWrapped bool
			up := serve(tc.resp)
			hdr := map[string]string{
				"Cookie": e.cookie(bkAcmeOrigin, time.Minute), "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe",
				"Accept-Encoding": "gzip, br", "Origin": "https://" + bkPortal,
			}
			for k, v := range tc.req {
				if v == "" {
					delete(hdr, k)
				} else {
					hdr[k] = v
				}
			}
			w := e.do(bkReq{method: tc.method, target: "/deals", hdr: hdr}, func(w http.ResponseWriter, r *http.Request) {
				seenAE = r.Header.Get("Accept-Encoding")
				_, seenWrapped = w.(*injectWriter)
				up(w, r)
			})
			if got := w.Body.String(); got != tc.wantBody {
				if len(got) > 300 {
					got = got[:150] + "…" + got[len(got)-150:]
				}
				t.Fatalf("body = %q", got)
			}
			if cl := w.Header().Get("Content-Length"); strings.Contains(tc.name, "before") && cl != strconv.Itoa(len(tc.wantBody)) {
				t.Fatalf("Content-Length = %q for %d bytes", cl, len(tc.wantBody))
			}
			if tc.wantCSP != "" {
				if got := w.Header().Values("Content-Security-Policy"); len(got) != 1 || got[0] != tc.wantCSP {
					t.Fatalf("CSP = %q, want %q", got, tc.wantCSP)
				}
			}
			if seenWrapped != tc.wrapped || (seenAE == "") != tc.wrapped {
				t.Fatalf("upstream writer wrapped %v, Accept-Encoding %q; want wrapped %v", seenWrapped, seenAE, tc.wrapped)
			}
			// A held page reaches the client in one piece; anything not
			// wrapped streams, its flushes reaching the client.
			if tc.resp.flush && w.Flushed == tc.wrapped {
				t.Fatalf("flushed = %v for wrapped = %v", w.Flushed, tc.wrapped)
			}
		})
	}
}

// TestInjectBridgeFreshNonce: a hash-only policy, and each of several CSP
// headers, gets a fresh random nonce that the tag carries; never 'self'.
func TestInjectBridgeFreshNonce(t *testing.T) {
	e := newBKEnv(t, true)
	page := "<html><body>x</body></html>"
	seen := map[string]bool{}
	for i := 0; i < 2; i++ {
		w := e.do(bkReq{target: "/deals", hdr: map[string]string{
			"Cookie": e.cookie(bkAcmeOrigin, time.Minute), "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe",
		}}, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Header().Add("Content-Security-Policy", "script-src 'sha256-AAAA'")
			w.Header().Add("Content-Security-Policy", "default-src https://cdn.example")
			w.Header().Set("Content-Security-Policy-Report-Only", "script-src 'unsafe-inline'")
			_, _ = io.WriteString(w, page)
		})
		m := regexp.MustCompile(`<script src="https://portal\.gate\.test/\.embed/bridge\.js" defer nonce="([^"]+)"></script></body>`).FindStringSubmatch(w.Body.String())
		if m == nil {
			t.Fatalf("no nonced tag: %q", w.Body.String())
		}
		n := m[1]
		if raw, err := base64.StdEncoding.DecodeString(n); err != nil || len(raw) < 16 {
			t.Fatalf("nonce %q: %v", n, err)
		}
		if seen[n] {
			t.Fatalf("nonce %q used twice", n)
		}
		seen[n] = true
		want := []string{
			"script-src 'sha256-AAAA' 'nonce-" + n + "'; frame-ancestors https://app.acme.test https://www.acme.test",
			"default-src https://cdn.example; script-src https://cdn.example 'nonce-" + n + "'",
		}
		if got := w.Header().Values("Content-Security-Policy"); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("CSP\n got %q\nwant %q", got, want)
		}
		if got := w.Header().Get("Content-Security-Policy-Report-Only"); got != "script-src 'unsafe-inline' "+bkSrcURL {
			t.Fatalf("CSP-Report-Only = %q", got)
		}
	}
}
