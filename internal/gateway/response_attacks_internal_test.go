package gateway

// Attacks from the app's side of the response: each test names the attack
// and failed before the fix it guards.

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func navWithSession(e *bkEnv, ago time.Duration) map[string]string {
	return map[string]string{
		"Cookie": e.cookie(bkAcmeOrigin, ago), "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe",
	}
}

// browserDirectives splits a directive the way a browser does (ASCII
// whitespace only) and returns its name and sources.
func browserDirectives(csp string) map[string][]string {
	out := map[string][]string{}
	for _, p := range strings.Split(csp, ",") {
		for _, d := range strings.Split(p, ";") {
			f := strings.FieldsFunc(d, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' })
			if len(f) == 0 {
				continue
			}
			name := strings.ToLower(f[0])
			if _, dup := out[name]; !dup {
				out[name] = f[1:]
			}
		}
	}
	return out
}

// TestInjectKeepsDeadCSPDirectivesDead: the app's CSP has a
// non-ASCII space (U+00A0, typical of a policy pasted from a web page)
// where CSP only splits on ASCII whitespace. In the browser the token
// "script-src\u00a0'unsafe-inline'" is an unknown directive (ignored), so
// default-src 'self' governs scripts and inline scripts are blocked.
// inject_bridge's Normalize split on Unicode space and rewrote the header
// with an ASCII space: a live script-src 'unsafe-inline' went out.
func TestInjectKeepsDeadCSPDirectivesDead(t *testing.T) {
	for _, tc := range []struct{ name, csp, forbidden string }{
		{"directive name", "default-src 'self'; script-src\u00a0'unsafe-inline'", "'unsafe-inline'"},
		{"source list", "script-src 'sha256-AAAA'\u00a0https://evil.example", "https://evil.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newBKEnv(t, true)
			before := browserDirectives(tc.csp)["script-src"]
			for _, s := range before {
				if s == tc.forbidden {
					t.Fatalf("precondition: %q already live", s)
				}
			}
			w := e.do(bkReq{target: "/deals", hdr: navWithSession(e, time.Minute)}, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.Header().Set("Content-Security-Policy", tc.csp)
				_, _ = io.WriteString(w, "<html><body>x</body></html>")
			})
			got := w.Header().Values("Content-Security-Policy")
			for _, s := range browserDirectives(strings.Join(got, ", "))["script-src"] {
				if s == tc.forbidden {
					t.Fatalf("the gateway made %s live in script-src: app sent %q, browser now gets %q", tc.forbidden, tc.csp, got)
				}
			}
		})
	}
}

// TestAppCannotSetGatewayCookies: the app (hostile, or with a
// header-injection bug) sets the gateway's own cookies on its response.
// The gateway strips them from requests to the app, and passed them on
// responses: the app could fix the browser's session (log the victim into
// an attacker's sealed session), sign it out, or plant the login_state
// nonce; its line came after the gateway's refresh, so it won. The
// gateway's own refresh must still go out, and the app's other cookies.
func TestAppCannotSetGatewayCookies(t *testing.T) {
	e := newBKEnv(t, false)
	w := e.do(bkReq{target: "/deals", hdr: navWithSession(e, 20*time.Minute)}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", bkCookie+"=ATTACKER-SEALED; Path=/; Secure; HttpOnly; SameSite=None; Partitioned")
		w.Header().Add("Set-Cookie", "app_pref=dark; Path=/; Secure")
		w.Header().Add("Set-Cookie", LoginCookie+"=attacker-nonce; Path=/; Secure; HttpOnly; SameSite=Lax")
		w.Header().Add("Set-Cookie", " "+bkCookie+"=; Max-Age=0")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok")
	})
	lines := w.Result().Header.Values("Set-Cookie")
	for _, line := range lines {
		if strings.Contains(line, "ATTACKER-SEALED") || strings.Contains(line, "attacker-nonce") || strings.Contains(line, "Max-Age=0") {
			t.Errorf("upstream Set-Cookie for a gateway-owned cookie reached the browser: %q", line)
		}
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[0], bkCookie+"=") || lines[1] != "app_pref=dark; Path=/; Secure" {
		t.Fatalf("Set-Cookie = %q, want the gateway's refresh, then the app's own cookie", lines)
	}
	// Without a refresh the gateway writes no line of its own.
	w = e.do(bkReq{target: "/deals", hdr: navWithSession(e, time.Second)}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", bkCookie+"=ATTACKER-SEALED; Path=/; Secure; HttpOnly; SameSite=None; Partitioned")
		_, _ = io.WriteString(w, "ok")
	})
	if lines := w.Result().Header.Values("Set-Cookie"); len(lines) != 0 {
		t.Fatalf("Set-Cookie = %q without a refresh, want none", lines)
	}
	// The gateway's line is known by its text, not its place: a handler
	// that replaces the slice (Header().Set) puts the app's line first. A
	// nameless cookie ("=<name>=v") comes back from the browser as the
	// named one.
	for _, set := range []string{bkCookie + "=ATTACKER-SEALED; Path=/", "=" + bkCookie + "=ATTACKER-SEALED; Path=/deals"} {
		w = e.do(bkReq{target: "/deals", hdr: navWithSession(e, 20*time.Minute)}, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Set-Cookie", set)
			_, _ = io.WriteString(w, "ok")
		})
		if lines := w.Result().Header.Values("Set-Cookie"); len(lines) != 0 {
			t.Fatalf("Set-Cookie = %q after the app set %q, want none", lines, set)
		}
	}
}

// TestQuotedNoStoreKeepsRefreshOutOfSharedCaches: keepFromSharedCaches split
// Cache-Control on every comma, even inside a quoted-string argument, so a
// "no-store" inside an extension's quoted value counted as the no-store
// directive. The response kept "public, max-age=3600" and carried the
// refreshed session cookie to a shared cache.
func TestQuotedNoStoreKeepsRefreshOutOfSharedCaches(t *testing.T) {
	e := newBKEnv(t, false)
	const cc = `public, max-age=3600, x-note="cdn, no-store, bypass"`
	w := e.do(bkReq{target: "/assets/app.css", hdr: map[string]string{"Cookie": e.cookie(bkAcmeOrigin, 20*time.Minute)}},
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", cc)
			w.Header().Set("Content-Type", "text/css")
			_, _ = io.WriteString(w, "body{}")
		})
	h := w.Result().Header
	if !strings.Contains(strings.Join(h.Values("Set-Cookie"), "|"), bkCookie+"=") {
		t.Fatalf("precondition: no refreshed cookie: %q", h.Values("Set-Cookie"))
	}
	if got := h.Values("Cache-Control"); len(got) == 1 && got[0] == cc {
		t.Fatalf("a refreshed session cookie went out with Cache-Control %q: a shared cache stores it", got[0])
	}
}

// TestInjectSkipsBodyEncodedOnALaterLine: Content-Encoding was read with
// h.Get, its first field line only. "Content-Encoding: identity" followed by
// "Content-Encoding: gzip" (the coding list is "identity, gzip") is taken
// for unencoded: the script tag was spliced into the gzip bytes, which
// the browser then failed to decode.
func TestInjectSkipsBodyEncodedOnALaterLine(t *testing.T) {
	e := newBKEnv(t, true)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = io.WriteString(zw, "<html><body>hello</body></html>")
	_ = zw.Close()
	w := e.do(bkReq{target: "/deals", hdr: navWithSession(e, time.Minute)}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Add("Content-Encoding", "identity")
		w.Header().Add("Content-Encoding", "gzip")
		_, _ = w.Write(gz.Bytes())
	})
	if !bytes.Equal(w.Body.Bytes(), gz.Bytes()) {
		t.Fatalf("an encoded body was rewritten (%d bytes in, %d out): %q", gz.Len(), w.Body.Len(), w.Body.Bytes())
	}
}

// TestInjectableReadsEveryLine: the header lines that decide whether the
// body is an unencoded HTML page of known size are read all, not only the
// first (h.Get): with two Content-Type lines a browser may take the
// second, and a body whose codings come on two lines is still encoded.
func TestInjectableReadsEveryLine(t *testing.T) {
	for _, c := range []struct {
		name string
		h    http.Header
		want bool
	}{
		{"one HTML line", http.Header{"Content-Type": {"text/html; charset=utf-8"}}, true},
		{"identity on every line", http.Header{"Content-Type": {"text/html"}, "Content-Encoding": {"identity", "Identity, "}}, true},
		{"gzip on the second line", http.Header{"Content-Type": {"text/html"}, "Content-Encoding": {"identity", "gzip"}}, false},
		{"gzip after identity", http.Header{"Content-Type": {"text/html"}, "Content-Encoding": {"identity, br"}}, false},
		{"two Content-Type lines", http.Header{"Content-Type": {"text/html", "application/json"}}, false},
		{"no Content-Type", http.Header{}, false},
		{"two Content-Length lines", http.Header{"Content-Type": {"text/html"}, "Content-Length": {"10", "10"}}, false},
		{"a Content-Range line", http.Header{"Content-Type": {"text/html"}, "Content-Range": {""}}, false},
	} {
		if got := injectable(c.h, http.StatusOK); got != c.want {
			t.Errorf("%s: injectable = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestMalformedCacheControlKeepsRefreshOutOfSharedCaches: a no-store in a
// Cache-Control that caches parse differently (a quote left open, which
// lines joined with ", " would close over the next; text after a closing
// quote) may be inside a quoted string for a cache: the response is made
// private anyway. A no-store with an argument is not the directive.
func TestMalformedCacheControlKeepsRefreshOutOfSharedCaches(t *testing.T) {
	for _, cc := range [][]string{
		{`public, max-age=600, x="a`, "no-store"},
		{`public, max-age=600, x="a"b", no-store`},
		{`public, max-age=600, no-store="x"`},
	} {
		h := http.Header{"Cache-Control": cc}
		keepFromSharedCaches(h)
		if got := h["Cache-Control"]; len(got) != 1 || got[0] != "private, no-cache" {
			t.Errorf("Cache-Control %q became %q, want private, no-cache", cc, got)
		}
	}
	h := http.Header{"Cache-Control": {`public, x-note="a, b", No-Store`}}
	if keepFromSharedCaches(h); h.Get("Cache-Control") != `public, x-note="a, b", No-Store` {
		t.Errorf("a clean no-store was overwritten: %q", h["Cache-Control"])
	}
}
