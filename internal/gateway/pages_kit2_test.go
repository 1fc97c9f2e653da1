package gateway

// The browser kit's second part, server side: the start page's wrong-tenant
// page, the sign-out page, the gate page's sentence per reason, Storage
// Access Headers' load, what bridge.js tells the SDK, and the served SDK
// being the npm package's file.

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/bridge"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/testsupport"
	"github.com/embedgate/embedgate/sdk"
)

const bkAcmeCSP = "frame-ancestors https://app.acme.test https://www.acme.test"

var bkNav = map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "cross-site"}

func withHeaders(base map[string]string, more ...string) map[string]string {
	h := map[string]string{}
	for k, v := range base {
		h[k] = v
	}
	for i := 0; i+1 < len(more); i += 2 {
		h[more[i]] = more[i+1]
	}
	return h
}

// An unknown or mismatched tenant on the start page is an HTML page that
// stops with embed:error wrong_tenant, framed by the tenant the request
// identifies: the host's, else the cookie's; by nobody without one.
func TestStartPageWrongTenantIsHTML(t *testing.T) {
	e := newBKEnv(t, false)
	for _, tc := range []struct {
		name, host, target, cookie string
		framing, tenant, why       string
		origins                    int
	}{
		{"tenant host, other tenant", bkAcmeHost, "/.embed/start?tenant=globex&next=/deals", "", bkAcmeCSP, "acme", "wrong_tenant", 2},
		{"tenant host, unknown tenant", bkAcmeHost, "/.embed/start?tenant=nope", "", bkAcmeCSP, "acme", "wrong_tenant", 2},
		{"shared host, unknown tenant, acme cookie", bkPortal, "/.embed/start?tenant=nope", e.cookie(bkAcmeOrigin, 9*time.Hour), bkAcmeCSP, "acme", "unknown_tenant", 2},
		{"shared host, unknown tenant", bkPortal, "/.embed/start?tenant=nope", "", "frame-ancestors 'none'", "", "unknown_tenant", 0},
		{"shared host, no tenant", bkPortal, "/.embed/start", "", "frame-ancestors 'none'", "", "bad_request", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := withHeaders(bkNav)
			if tc.cookie != "" {
				hdr["Cookie"] = tc.cookie
			}
			w := e.do(bkReq{host: tc.host, target: tc.target, hdr: hdr}, nil)
			checkPageHeaders(t, w, http.StatusBadRequest, tc.framing)
			c := pageConfig(t, w.Body.String())
			if c.Page != "start" || c.Error != "wrong_tenant" || c.Reason != tc.why || c.Tenant != tc.tenant || len(c.Origins) != tc.origins || c.Next != "/" {
				t.Fatalf("config = %+v", c)
			}
			if !strings.Contains(w.Body.String(), `<p id="config-error" data-state hidden>This app is not set up for this page.`) {
				t.Fatal("no final state for the error")
			}
			if w.Header().Get("Set-Cookie") != "" {
				t.Fatal("the error page touched the cookie")
			}
		})
	}
}

// GET {prefix}/signout is the sign-out page; it changes nothing itself
// (the session still works after it), and is framed like the gate page.
func TestSignoutPage(t *testing.T) {
	e := newBKEnv(t, false)
	live := e.cookie(bkAcmeOrigin2, time.Minute)
	w := e.do(bkReq{target: "/.embed/signout?tenant=acme", hdr: withHeaders(bkNav, "Cookie", live)}, nil)
	checkPageHeaders(t, w, http.StatusOK, bkAcmeCSP)
	body := w.Body.String()
	c := pageConfig(t, body)
	if c.Page != "signout" || c.Tenant != "acme" || c.Reason != "signed_out" || c.Bound != bkAcmeOrigin2 ||
		strings.Join(c.Origins, " ") != bkAcmeOrigin+" "+bkAcmeOrigin2 || c.Prefix != "/.embed" {
		t.Fatalf("config = %+v", c)
	}
	for _, want := range []string{
		`<meta name="embedgate-reason" content="signed_out">`,
		`<p id="gate" data-state data-why="signed_out">You are signed out.`,
		`<p id="signing-out" data-state hidden>Signing out…</p>`,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("sign-out page lacks %q", want)
		}
	}
	if w.Header().Get("Set-Cookie") != "" {
		t.Fatal("GET signed out: only the page's POST may")
	}
	// The GET revoked nothing: the same cookie still reaches the app.
	reached := false
	e.do(bkReq{target: "/deals", hdr: map[string]string{"Cookie": live}}, func(w http.ResponseWriter, r *http.Request) { reached = true })
	if !reached {
		t.Fatal("the session did not survive a GET of the sign-out page")
	}

	// HEAD too; other methods but POST are 405 naming all three.
	if w := e.do(bkReq{method: "HEAD", target: "/.embed/signout?tenant=acme"}, nil); w.Code != http.StatusOK {
		t.Fatalf("HEAD: %d", w.Code)
	}
	if w := e.do(bkReq{method: "PUT", target: "/.embed/signout"}, nil); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD, POST" {
		t.Fatalf("PUT: %d Allow %q", w.Code, w.Header().Get("Allow"))
	}

	// Which tenant frames it: the one named, else the host's, else the cookie's.
	for _, tc := range []struct{ name, host, target, cookie, framing, tenant string }{
		{"tenant host, no parameter", bkAcmeHost, "/.embed/signout", "", bkAcmeCSP, "acme"},
		{"tenant host, wrong parameter", bkAcmeHost, "/.embed/signout?tenant=globex", "", bkAcmeCSP, "acme"},
		{"shared host, expired cookie", bkPortal, "/.embed/signout", e.cookie(bkAcmeOrigin, 9*time.Hour), bkAcmeCSP, "acme"},
		{"shared host, other tenant named", bkPortal, "/.embed/signout?tenant=globex", live, "frame-ancestors https://globex.test", "globex"},
		{"nobody known", bkPortal, "/.embed/signout?tenant=nope", "", "frame-ancestors 'none'", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := withHeaders(bkNav)
			if tc.cookie != "" {
				hdr["Cookie"] = tc.cookie
			}
			w := e.do(bkReq{host: tc.host, target: tc.target, hdr: hdr}, nil)
			checkPageHeaders(t, w, http.StatusOK, tc.framing)
			c := pageConfig(t, w.Body.String())
			if c.Tenant != tc.tenant {
				t.Fatalf("tenant %q, want %q", c.Tenant, tc.tenant)
			}
			if tc.tenant == "globex" && c.Bound != "" {
				t.Fatalf("an acme session bound globex's page to %q", c.Bound)
			}
		})
	}
}

// TestSignoutOfAnotherTenant: on a shared host, one unpartitioned cookie
// (Storage Access without CHIPS) serves every tenant, and a tenant's
// sign-out page POSTs the sign-out from the gateway's own origin. Tenant
// globex's page, framed on globex's site, must not end the user's session
// with acme (a cross-tenant forced sign-out); acme's own page still does.
func TestSignoutOfAnotherTenant(t *testing.T) {
	e := newBKEnv(t, false)
	live := e.cookie(bkAcmeOrigin2, time.Minute)
	reaches := func() bool {
		reached := false
		e.do(bkReq{target: "/deals", hdr: map[string]string{"Cookie": live}}, func(http.ResponseWriter, *http.Request) { reached = true })
		return reached
	}
	post := func(target string) *httptest.ResponseRecorder {
		return e.do(bkReq{method: "POST", target: target,
			hdr: map[string]string{"Cookie": live, "Origin": "https://" + bkPortal, "Sec-Fetch-Site": "same-origin"}}, nil)
	}
	if w := post("/.embed/signout?tenant=globex"); w.Code != http.StatusNoContent || len(w.Header().Values("Set-Cookie")) != 0 {
		t.Fatalf("globex's sign-out: %d, Set-Cookie %q", w.Code, w.Header().Values("Set-Cookie"))
	}
	if !reaches() {
		t.Fatal("globex's sign-out page ended the acme session")
	}
	if w := post("/.embed/signout?tenant=acme"); w.Code != http.StatusNoContent || !strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("acme's sign-out: %d, Set-Cookie %q", w.Code, w.Header().Values("Set-Cookie"))
	}
	if reaches() {
		t.Fatal("acme's own sign-out page did not end its session")
	}
}

// One sentence per group of reasons, for every reason there is.
func TestGatePageSaysWhy(t *testing.T) {
	group := map[reason.Reason]string{
		reason.SessionMissing:  "not_signed_in",
		bridge.ReasonSignedOut: "signed_out", reason.SessionRevoked: "signed_out",
		reason.SessionExpired: "session_expired", reason.SessionIdle: "session_expired",
		reason.Replayed: "link_used",
	}
	sentence := map[string]string{
		"not_signed_in":   "You are not signed in yet. Sign in from the page that shows this app.",
		"signed_out":      "You are signed out. Sign in again from the page that shows this app.",
		"session_expired": "Your session has expired. Sign in again from the page that shows this app.",
		"link_used":       "This sign-in link was already used: each link works once. Open the app again from the page that shows it.",
		"not_verified":    "Your sign-in could not be verified. Sign in again from the page that shows this app.",
	}
	for _, r := range append(reason.All(), bridge.ReasonSignedOut) {
		g := group[r]
		if g == "" {
			g = "not_verified"
		}
		body := string(bridge.GatePage(bridge.PageConfig{Reason: string(r), Prefix: "/.embed"}))
		want := `<p id="gate" data-state data-why="` + g + `">` + sentence[g] + `</p>`
		if !strings.Contains(body, want) {
			t.Errorf("%s: gate page lacks %s", r, want)
		}
		if strings.Contains(body, "Your session has ended") {
			t.Errorf("%s: the old catch-all sentence", r)
		}
	}

	// Through the gateway: the reasons a frame really meets.
	e := newBKEnv(t, false)
	gate := func(q bkReq) string {
		t.Helper()
		w := e.do(q, nil)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("%s: %d", q.target, w.Code)
		}
		return w.Body.String()
	}
	tok := bkToken(t, e, "jti-replayed-1")
	e.do(bkReq{host: bkAcmeHost, target: "/deals?embed_token=" + tok, hdr: bkNav}, nil) // first use
	for _, tc := range []struct {
		name string
		q    bkReq
		why  string
	}{
		{"no cookie", bkReq{host: bkAcmeHost, target: "/deals", hdr: bkNav}, "not_signed_in"},
		{"expired", bkReq{target: "/deals", hdr: withHeaders(bkNav, "Cookie", e.cookie(bkAcmeOrigin, 9*time.Hour))}, "session_expired"},
		{"garbage token", bkReq{host: bkAcmeHost, target: "/deals?embed_token=abc", hdr: bkNav}, "not_verified"},
		{"used link", bkReq{host: bkAcmeHost, target: "/deals?embed_token=" + tok, hdr: bkNav}, "link_used"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if body := gate(tc.q); !strings.Contains(body, `data-why="`+tc.why+`">`+sentence[tc.why]) {
				t.Fatalf("gate page does not say %s:\n%s", tc.why, body)
			}
		})
	}
}

// bkToken signs a one-time token of acme with the given jti.
func bkToken(t *testing.T, e *bkEnv, jti string) string {
	t.Helper()
	c := testsupport.Claims("acme", "jane@acme.test", e.now)
	c["jti"] = jti
	return testsupport.Mint(t, testsupport.HS256(strings.Repeat("a", 32), ""), c)
}

// Sec-Fetch-Storage-Access: active on a document load of an allowlisted
// origin (or the gateway's own, or none named) is answered with load: the
// start page, the gate page, the sign-out page and app navigations.
func TestStorageAccessLoad(t *testing.T) {
	e := newBKEnv(t, false)
	active := func(more ...string) map[string]string {
		return withHeaders(bkNav, append([]string{"Sec-Fetch-Storage-Access", "active"}, more...)...)
	}
	live := e.cookie(bkAcmeOrigin, time.Minute)
	upstream := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<p>app</p>"))
	}
	for _, tc := range []struct {
		name, host, target string
		hdr                map[string]string
		up                 http.HandlerFunc
		want               string
	}{
		{"start, allowlisted Origin", bkPortal, "/.embed/start?tenant=acme", active("Origin", bkAcmeOrigin), nil, "load"},
		{"start, no Origin", bkPortal, "/.embed/start?tenant=acme", active(), nil, "load"},
		{"start, the gateway's own Origin", bkPortal, "/.embed/start?tenant=acme", active("Origin", "https://"+bkPortal), nil, "load"},
		{"start, stranger Origin", bkPortal, "/.embed/start?tenant=acme", active("Origin", "https://evil.test"), nil, ""},
		{"start, Origin null", bkPortal, "/.embed/start?tenant=acme", active("Origin", "null"), nil, ""},
		{"gate page", bkAcmeHost, "/deals", active("Origin", bkAcmeOrigin2), nil, "load"},
		{"sign-out page", bkPortal, "/.embed/signout?tenant=acme", active("Cookie", live), nil, "load"},
		{"app navigation with a session", bkPortal, "/deals", active("Cookie", live), upstream, "load"},
		{"app fetch with a session", bkPortal, "/api/x", withHeaders(active("Cookie", live), "Sec-Fetch-Mode", "cors", "Sec-Fetch-Dest", "empty"), upstream, ""},
		{"inactive stays retry", bkPortal, "/.embed/start?tenant=acme", withHeaders(bkNav, "Sec-Fetch-Storage-Access", "inactive", "Origin", bkAcmeOrigin), nil, `retry; allowed-origin="https://app.acme.test"`},
		{"none", bkPortal, "/.embed/start?tenant=acme", withHeaders(bkNav, "Sec-Fetch-Storage-Access", "none"), nil, ""},
		{"no tenant known", bkPortal, "/deals", active(), nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := e.do(bkReq{host: tc.host, target: tc.target, hdr: tc.hdr}, tc.up)
			if got := w.Header().Get("Activate-Storage-Access"); got != tc.want {
				t.Fatalf("Activate-Storage-Access = %q, want %q (status %d)", got, tc.want, w.Code)
			}
			if tc.name != "no tenant known" && !contains(w.Header().Values("Vary"), "Sec-Fetch-Storage-Access") {
				t.Fatalf("Vary = %q", w.Header().Values("Vary"))
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// bridge.js names the live session's tenant, sub and expiry (for the
// app's embed:ready and the sign-out page); without a session, the host's
// tenant only.
func TestBridgeTellsTheSession(t *testing.T) {
	e := newBKEnv(t, false)
	cfgOf := func(q bkReq) string {
		t.Helper()
		m := bkBridgeCfg.FindStringSubmatch(e.do(q, nil).Body.String())
		if m == nil {
			t.Fatal("no bridge config")
		}
		return m[1]
	}
	got := cfgOf(bkReq{target: "/.embed/bridge.js", hdr: map[string]string{"Cookie": e.cookie(bkAcmeOrigin, time.Minute)}})
	want := `{"origins":["https://app.acme.test"],"prefix":"/.embed","tenant":"acme","sub":"jane@acme.test","expires_at":"` +
		e.now.Add(-time.Minute).Add(8*time.Hour).UTC().Format(time.RFC3339) + `"}`
	if got != want {
		t.Fatalf("bridge config\n got %s\nwant %s", got, want)
	}
	if got := cfgOf(bkReq{host: bkAcmeHost, target: "/.embed/bridge.js"}); strings.Contains(got, `"sub"`) || !strings.Contains(got, `"tenant":"acme"`) {
		t.Fatalf("no session: %s", got)
	}
}

// The SDK the gateway serves is sdk/sdk.js, the npm package's file, with
// only its PREFIX line filled in; sdk.d.ts is served as it is.
func TestServedSDKIsThePackageFile(t *testing.T) {
	file, err := os.ReadFile("../../sdk/sdk.js")
	if err != nil {
		t.Fatal(err)
	}
	types, err := os.ReadFile("../../sdk/sdk.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	e := newBKEnv(t, false)
	if w := e.do(bkReq{target: "/.embed/sdk.js"}, nil); !bytes.Equal(w.Body.Bytes(), file) {
		t.Fatal("served /.embed/sdk.js differs from sdk/sdk.js (prefix /.embed needs no change)")
	}
	if w := e.do(bkReq{target: "/.embed/sdk.d.ts"}, nil); !bytes.Equal(w.Body.Bytes(), types) {
		t.Fatal("served /.embed/sdk.d.ts differs from sdk/sdk.d.ts")
	}
	// Another prefix changes exactly one line, the PREFIX line.
	served := strings.Split(string(bridge.SDK("/_gate")), "\n")
	orig := strings.Split(string(file), "\n")
	if len(served) != len(orig) {
		t.Fatalf("%d lines served, %d in the file", len(served), len(orig))
	}
	var changed []string
	for i := range orig {
		if served[i] != orig[i] {
			changed = append(changed, orig[i]+" => "+served[i])
		}
	}
	if len(changed) != 1 || !strings.Contains(changed[0], sdk.PrefixLine) || !strings.Contains(changed[0], `const PREFIX = "/_gate";`) {
		t.Fatalf("changed lines: %q", changed)
	}
}
