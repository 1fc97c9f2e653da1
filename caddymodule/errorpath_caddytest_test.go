package caddymodule_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/embedgate/embedgate/internal/testsupport"
)

// startErrorPath loads embed_session (with extra subdirectives, if any) and
// caddy_errors in front of an app that is down, a handle_errors route
// proxying to another app (returned, it records what it gets) and Caddy's
// own log at DEBUG in a file (its path).
func startErrorPath(t *testing.T, extra ...string) (*caddytest.Tester, *upstream, string) {
	t.Helper()
	errorsApp := newUpstream(t)
	tester, dir := newTester(t)
	serverLog := filepath.Join(dir, "server.log")
	down := testsupport.FreePort(t) // nothing listens: the app is down
	debugLog := fmt.Sprintf("log {\n\t\t\toutput file %s\n\t\t\tformat json\n\t\t\tlevel DEBUG\n\t\t}", serverLog)
	tester.InitServer(globalOptions(dir, debugLog)+fmt.Sprintf(`
	%s {
		embed_session {
			tenant acme {
				key %s
				frame_ancestors https://app.acme.test
			}
			session_key %s
			caddy_errors
			%s
		}
		reverse_proxy 127.0.0.1:%d
		handle_errors {
			reverse_proxy %s
		}
	}
	`, ctBase, ctSecret, ctSealKey, strings.Join(extra, "\n\t\t\t"), down, errorsApp.addr), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return tester, errorsApp, serverLog
}

// TestCaddytestTokenURLNeverReachesErrorPath stops token leakage through
// Caddy's error path: a POST to /app/x?embed_token=… with a session used to
// go on to the app with the token removed from the request, but Caddy
// keeps the original URL for errors. With the app down, Caddy's error log
// wrote that URL at ERROR, and handle_errors ran its routes with it, so an
// error route proxying to an app (here: the "errors" upstream) received the
// unspent token. Now the gateway answers such a request itself (400), for
// Caddy neither an error to log nor one to route, and the token stays
// unspent; with caddy_errors on, as here, too.
func TestCaddytestTokenURLNeverReachesErrorPath(t *testing.T) {
	tester, errorsApp, serverLog := startErrorPath(t)
	cookie := login(t, tester, nil)
	// The error path works: a request without the token, with the app
	// down, is Caddy's 502 and goes to the error route.
	do(t, tester, http.MethodPost, "/app/x?marker=1", cookie, http.StatusOK)
	if seen := errorsApp.take(); len(seen) != 1 || !strings.Contains(seen[0].URI, "marker=1") {
		t.Fatalf("the error route got %+v, want the marker request", seen)
	}
	tok := mint(t, nil)
	for _, c := range []struct{ method, cookie string }{{http.MethodPost, cookie}, {http.MethodPost, ""}, {http.MethodPut, cookie}} {
		do(t, tester, c.method, "/app/x?embed_token="+tok+"&x=1", c.cookie, http.StatusBadRequest)
	}
	if seen := errorsApp.take(); len(seen) != 0 {
		t.Errorf("the error route got a token URL: %+v", seen)
	}
	logged, _ := os.ReadFile(serverLog)
	if !bytes.Contains(logged, []byte("marker=1")) {
		t.Fatalf("the server log never recorded the marker request's error; log:\n%s", logged)
	}
	if bytes.Contains(logged, []byte(tok)) {
		t.Errorf("the server log holds the token:\n%s", logged)
	}
	// Unspent: it still signs in.
	req, _ := http.NewRequest(http.MethodPost, ctBase+"/.embed/exchange", strings.NewReader(`{"token":"`+tok+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp := tester.AssertResponseCode(req, http.StatusNoContent)
	resp.Body.Close()
}

// TestCaddytestRefusalToErrorRouteWithoutCookie stops the session cookie
// leaking through handle_errors: with caddy_errors, a refused request into
// the app (here a cross-site POST, the CSRF case, where another site makes
// the victim's browser send the cookie) comes back to Caddy as an error,
// and an error route proxying to an app received it with the live session
// cookie, which only forward used to strip. The app behind the error route
// gets the request without it, other cookies kept.
func TestCaddytestRefusalToErrorRouteWithoutCookie(t *testing.T) {
	tester, errorsApp, _ := startErrorPath(t)
	cookie := login(t, tester, nil)
	req, _ := http.NewRequest(http.MethodPost, ctBase+"/app/transfer", nil)
	req.Header.Set("Cookie", "theme=dark; "+ctCookie+"="+cookie)
	req.Header.Set("Origin", "https://evil.test")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp := tester.AssertResponseCode(req, http.StatusOK) // the error route's answer
	resp.Body.Close()
	seen := errorsApp.take()
	if len(seen) != 1 {
		t.Fatalf("the error route got %d requests, want 1", len(seen))
	}
	if c := seen[0].Header.Get("Cookie"); strings.Contains(c, ctCookie) || strings.Contains(c, cookie) || c != "theme=dark" {
		t.Errorf("the app behind the error route got Cookie %q, want theme=dark", c)
	}
	for _, name := range []string{"X-Embed-Tenant", "X-Embed-Subject"} {
		if v := seen[0].Header.Values(name); len(v) != 0 {
			t.Errorf("the refused request carried %s %q", name, v)
		}
	}
}

// TestCaddytestAppErrorToErrorRouteWithoutAssertion stops the upstream
// assertion leaking through handle_errors: when the app itself fails (here
// it is down), the request already carries X-Embed-Assertion, a bearer
// token the app accepts for the session's user until it expires, and an
// error route proxying elsewhere handed it to that service. The error
// route gets the request without it, and without the session cookie.
func TestCaddytestAppErrorToErrorRouteWithoutAssertion(t *testing.T) {
	tester, errorsApp, _ := startErrorPath(t, "assertion")
	cookie := login(t, tester, nil)
	do(t, tester, http.MethodGet, "/app/x", cookie, http.StatusOK) // the error route's answer
	seen := errorsApp.take()
	if len(seen) != 1 {
		t.Fatalf("the error route got %d requests, want 1", len(seen))
	}
	if v := seen[0].Header.Values("X-Embed-Assertion"); len(v) != 0 {
		t.Errorf("the error route got X-Embed-Assertion (%d values)", len(v))
	}
	if c := seen[0].Header.Get("Cookie"); strings.Contains(c, cookie) {
		t.Errorf("the error route got the session cookie: %q", c)
	}
}
