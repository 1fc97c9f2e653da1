package caddymodule_test

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// These regressions guard what the app reads from a request against what
// the gateway checked: the app's framework may read the host, the path or
// a parameter's name otherwise than Caddy's placeholders do.

// TestCaddytestHostOverrideHeadersNeverReachApp stops tenant confusion
// through host and path override headers: the session is bound to the
// Host the gateway checked, but a Rack or Spring app takes its host from
// a client's `Forwarded: host=globex.test`, and an IIS or Laminas app its
// path from X-Original-URL, so the app would serve another tenant or
// another path than the one require rules checked. None of them may reach
// the app; the X-Forwarded-* that Caddy's proxy sets itself still do.
func TestCaddytestHostOverrideHeadersNeverReachApp(t *testing.T) {
	up := newUpstream(t)
	tester, _ := startGateway(t, up, "")
	tester.Client.Jar = nil // each request carries the cookie it is given
	cookie := login(t, tester, nil)
	overrides := []string{"Forwarded", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server",
		"X-Forwarded-Scheme", "X-Forwarded-Ssl", "X-Original-URL", "X-Original-URI", "X-Rewrite-URL",
		"X-Original-Host", "Front-End-Https", "X-Url-Scheme"}
	var hdr []string
	for _, h := range overrides {
		hdr = append(hdr, h, "host=globex.test;proto=https")
	}
	for _, cookie := range []string{cookie, ""} { // with a session and, refused, without
		status := http.StatusOK
		if cookie == "" {
			status = http.StatusUnauthorized
		}
		get(t, tester, "/app", cookie, status, append(hdr, "X-Forwarded-Host", "globex.test")...)
	}
	seen := up.take()
	if len(seen) != 1 {
		t.Fatalf("the app got %d requests, want 1", len(seen))
	}
	for _, h := range overrides {
		if v := seen[0].Header.Values(h); len(v) != 0 {
			t.Errorf("the app got %s: %q", h, v)
		}
	}
	if got := seen[0].Header.Get("X-Forwarded-Host"); got != strings.TrimPrefix(ctBase, "http://") {
		t.Errorf("X-Forwarded-Host = %q, want Caddy's own %q", got, strings.TrimPrefix(ctBase, "http://"))
	}
}

// TestCaddytestRequireRuleParamNameFolding stops cross-tenant access
// through parameter names the app folds into the one a require rule reads:
// under `require claim org {query.org}`, Caddy's placeholder reads acme
// from org=acme&+org=globex, while PHP (which drops leading spaces, reads
// ' ' and '.' as '_' and ends a name at NUL) reads org=globex, as ASP.NET
// (which ignores case) reads ORG=globex&org=acme; under a rule on
// {cookie.org}, Python's and Django's cookie parsers read the last of two
// org cookies. Such requests are refused before the proxy; a plain one of
// the session's own org passes.
func TestCaddytestRequireRuleParamNameFolding(t *testing.T) {
	t.Run("query", func(t *testing.T) {
		up := newUpstream(t)
		tester, _ := startGateway(t, up, "require claim org {query.org}\n\t\t\trequire claim team {query.team_id}")
		cookie := login(t, tester, map[string]any{"org": "acme", "team": "red"})
		get(t, tester, "/report?org=acme&team_id=red&org.x=1", cookie, http.StatusOK)
		get(t, tester, "/report?org=globex&team_id=red", cookie, http.StatusForbidden)
		if seen := up.take(); len(seen) != 1 {
			t.Fatalf("the app got %d requests, want the plain one only", len(seen))
		}
		for _, q := range []string{
			"org=acme&team_id=red&+org=globex",
			"org=acme&team_id=red&%20org=globex",
			"org=acme&team_id=red&org%00=globex",
			"ORG=globex&org=acme&team_id=red",
			"org=acme&team_id=red&team.id=blue",
			"org=acme&team_id=red&team+id=blue",
			"org=acme&team_id=red&org[]=globex",
		} {
			get(t, tester, "/report?"+q, cookie, http.StatusBadRequest)
			if seen := up.take(); len(seen) != 0 {
				t.Errorf("%s reached the app as %q", q, seen[0].URI)
			}
		}
	})
	t.Run("cookie", func(t *testing.T) {
		up := newUpstream(t)
		tester, _ := startGateway(t, up, "require claim org {cookie.org}")
		cookie := login(t, tester, map[string]any{"org": "acme"})
		send := func(cookies string, status int) {
			t.Helper()
			req, _ := http.NewRequest(http.MethodGet, ctBase+"/report", nil)
			req.Header.Set("Cookie", ctCookie+"="+cookie+"; "+cookies)
			resp := tester.AssertResponseCode(req, status)
			resp.Body.Close()
		}
		send("org=acme; theme=dark", http.StatusOK)
		if seen := up.take(); len(seen) != 1 || seen[0].Header.Get("Cookie") != "org=acme; theme=dark" {
			t.Fatalf("the plain request: the app got %+v", seen)
		}
		for _, c := range []string{"org=acme; org=globex", "org=acme; ORG=globex", "org=acme; org[]=globex"} {
			send(c, http.StatusBadRequest)
			if seen := up.take(); len(seen) != 0 {
				t.Errorf("Cookie %q reached the app", c)
			}
		}
	})
}

// TestCaddytestTokenParamUnderFoldedName stops token leakage under a name
// the app reads as the token parameter: PHP reads embed.token, embed+token
// and " embed_token" as embed_token (and ends a name at NUL), and ASP.NET
// EMBED_TOKEN. A token sent
// so (by a backend that spells the name its own way) must be exchanged
// like ?embed_token=, never reach the app unspent, and stay out of the
// access log.
func TestCaddytestTokenParamUnderFoldedName(t *testing.T) {
	up := newUpstream(t)
	tester, logFile := startGateway(t, up, "")
	tester.Client.Jar = nil // the marker below goes without a session
	var toks []string
	for _, name := range []string{"embed.token", "embed+token", "%20embed_token", "EMBED_TOKEN", "embed_token%5B%5D", "embed_token%00"} {
		tok := mint(t, nil)
		toks = append(toks, tok)
		resp := get(t, tester, "/app/page?"+name+"="+tok+"&tab=2", "", http.StatusSeeOther)
		if loc := resp.Header.Get("Location"); loc != "/app/page?tab=2" {
			t.Errorf("%s: Location = %q, want /app/page?tab=2", name, loc)
		}
		if sessionCookie(t, resp) == "" {
			t.Errorf("%s: the token was not exchanged", name)
		}
	}
	if seen := up.take(); len(seen) != 0 {
		t.Errorf("a token URL reached the app: %+v", seen)
	}
	const marker = "/app/logged-marker"
	get(t, tester, marker, "", http.StatusUnauthorized)
	var logged []byte
	for deadline := time.Now().Add(5 * time.Second); !bytes.Contains(logged, []byte(marker)); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the ordinary request never reached the access log:\n%s", logged)
		}
		logged, _ = os.ReadFile(logFile)
	}
	for _, tok := range toks {
		if bytes.Contains(logged, []byte(tok)) || bytes.Contains(logged, []byte(url.QueryEscape(tok))) {
			t.Errorf("the access log holds a token:\n%s", logged)
		}
	}
}

// TestCaddytestTraceNeverReachesApp stops cross-site tracing: an app (or
// the server it runs in) that answers TRACE echoes the request, so the
// client would read back the identity headers and the signed assertion the
// gateway added. TRACE is refused before the proxy, with a session too.
func TestCaddytestTraceNeverReachesApp(t *testing.T) {
	up := newUpstream(t)
	tester, _ := startGateway(t, up, "assertion")
	tester.Client.Jar = nil
	cookie := login(t, tester, nil)
	do(t, tester, http.MethodOptions, "/app", cookie, http.StatusOK)
	if seen := up.take(); len(seen) != 1 || seen[0].Header.Get("X-Embed-Assertion") == "" {
		t.Fatalf("OPTIONS with a session: the app got %+v, want one request with the assertion", seen)
	}
	for _, m := range []string{http.MethodTrace, "TRACK"} {
		do(t, tester, m, "/app", cookie, http.StatusBadRequest)
		if seen := up.take(); len(seen) != 0 {
			t.Errorf("%s reached the app: %+v", m, seen)
		}
	}
}
