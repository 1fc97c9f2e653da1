package gateway_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/testsupport"
)

// A require rule reading the path must see the path the upstream serves:
// dot segments, empty segments and encoded slashes are refused (400), so
// /acme/../globex cannot pass a rule for acme and reach globex's data.
func TestRequirePlaceholderRefusesNonCanonicalPaths(t *testing.T) {
	firstSegment := func(e *env, c *gateway.Config) {
		c.Expand = func(r *http.Request, s string) string {
			seg, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
			return strings.ReplaceAll(s, "{path0}", seg)
		}
	}
	e := newEnv(t, withRequire(gateway.Requirement{Claim: "org", Value: "{path0}"}), firstSegment)
	v := e.login(set("org", "acme"))
	for _, p := range []string{"/acme/deals", "/acme/deals/", "/acme/a%20b"} {
		wantCalled(t, e.do(newReq("GET", p, nil, withCookie(v))))
	}
	wantJSONError(t, e.do(newReq("GET", "/globex/deals", nil, withCookie(v), xhr())), 403, "forbidden", "requirement_failed")
	for _, p := range []string{"/acme/../globex/deals", "/acme/./deals", "/acme//deals", "/acme%2F..%2Fglobex/deals", "/acme%2f..%2fglobex", "/acme%5C..%5Cglobex", "/acme/%2E%2E/globex",
		// Path parameters: servlet containers drop ";x" and then resolve "..".
		"/acme/..;/globex", "/acme/..;x=1/globex", "/acme/.;/..;/globex", "/acme/..%3B/globex", "/acme;x=1/deals"} {
		r := newReq("GET", "/", nil, withCookie(v), xhr())
		r.URL.Path, r.URL.RawPath = "", ""
		if err := setRawPath(r, p); err != nil {
			t.Fatal(err)
		}
		res := e.do(r)
		wantJSONError(t, res, 400, "invalid_request", "bad_request")
		wantNotCalled(t, res)
	}
	// Without placeholders in require values, paths are the upstream's business.
	plain := newEnv(t, withRequire(gateway.Requirement{Claim: "org", Value: "acme"}))
	pv := plain.login(set("org", "acme"))
	r := newReq("GET", "/", nil, withCookie(pv))
	_ = setRawPath(r, "/a/../b")
	wantCalled(t, plain.do(r))
}

func setRawPath(r *http.Request, raw string) error {
	u, err := url.Parse(raw) // not r.URL.Parse: that resolves dot segments away
	if err != nil {
		return err
	}
	r.URL.Path, r.URL.RawPath = u.Path, u.RawPath
	r.RequestURI = raw
	return nil
}

// A token that narrows the session with allowed_origins still works through
// ?embed_token= on a cross-site navigation (no Origin header is sent).
func TestAllowedOriginsOnTokenParamNavigation(t *testing.T) {
	e := newEnv(t)
	tok := e.mint("acme", set("allowed_origins", []string{acmeOrigin}))
	res := e.do(newReq("GET", "/deals?embed_token="+tok, nil, fetchSite("cross-site"), navigate("iframe")))
	wantStatus(t, res, http.StatusSeeOther)
	// An Origin outside the narrowed list is still refused.
	tok2 := e.mint("acme", set("allowed_origins", []string{acmeOrigin}))
	res = e.do(newReq("GET", "/deals?embed_token="+tok2, nil, fetchSite("cross-site"), fromOrigin(evilOrigin)))
	wantNotCalled(t, res)
	if res.Code == http.StatusSeeOther {
		t.Fatal("exchange from an origin outside allowed_origins succeeded")
	}
}

// The token parameter never reaches the upstream, whatever its spelling.
func TestEncodedTokenParamNeverForwarded(t *testing.T) {
	e := newEnv(t)
	v := e.login()
	for _, q := range []string{"embed%5Ftoken=SECRET", "embed%5ftoken=SECRET&x=1", "x=1&embed_token=SECRET"} {
		res := e.do(newReq("POST", "/deals?"+q, nil, withCookie(v)))
		wantStatus(t, res, http.StatusBadRequest)
		wantNotCalled(t, res)
	}
}

// A WebSocket handshake (a GET with Upgrade) gets the Origin check of an
// unsafe method: a foreign page cannot ride the session into a socket.
func TestWebSocketUpgradeOriginChecked(t *testing.T) {
	e := newEnv(t)
	v := e.login()
	ws := func(origin string) result {
		return e.do(newReq("GET", "/socket", nil, withCookie(v), hdr("Upgrade", "websocket"), hdr("Connection", "Upgrade"), fromOrigin(origin)))
	}
	res := ws(evilOrigin)
	wantJSONError(t, res, 403, "forbidden", "cross_origin")
	wantNotCalled(t, res)
	wantCalled(t, ws(selfOrigin))
	wantCalled(t, ws(acmeOrigin))
}

// The adapter is told about every request with the token in its URL (to keep
// it out of the access log), and about no other.
func TestOnTokenInURL(t *testing.T) {
	var seen []string
	e := newEnv(t, func(_ *env, c *gateway.Config) {
		c.OnTokenInURL = func(r *http.Request) { seen = append(seen, r.Method+" "+r.URL.Path) }
	})
	e.do(newReq("GET", "/a?embed_token="+e.mint("acme"), nil))
	e.do(newReq("HEAD", "/b?embed%5Ftoken=x", nil))
	e.do(newReq("GET", "/c?x=1", nil))
	e.do(newReq("GET", "/d", nil))
	if strings.Join(seen, ",") != "GET /a,HEAD /b" {
		t.Fatalf("OnTokenInURL saw %v", seen)
	}
}

// Memory exhaustion through the boundary's trailer read-ahead: a POST to
// an endpoint (here the token API, unauthenticated) that declares a
// trailer and streams a chunked body must not be buffered up to 8 MiB
// before the endpoint's own 16 KiB limit applies. Nothing at an endpoint
// goes upstream, so no trailer needs checking there; the body is read
// only as far as the endpoint's limit.
func TestEndpointBodyNotReadAheadForTrailers(t *testing.T) {
	e := newEnv(t)
	body := &countingBody{size: 8 << 20}
	r := newReq(http.MethodPost, "/.embed/token", nil)
	r.Body, r.ContentLength = body, -1
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer not-a-key")
	r.Trailer = http.Header{"X-Checksum": nil}
	res := e.do(r)
	if res.Code < 400 {
		t.Fatalf("status %d", res.Code)
	}
	if body.n > 64<<10 {
		t.Fatalf("answered %d after reading %d bytes of the body; the endpoint's limit is 16 KiB", res.Code, body.n)
	}
}

// countingBody is an endless-looking body that counts what was read.
type countingBody struct{ n, size int }

func (c *countingBody) Read(p []byte) (int, error) {
	if c.n >= c.size {
		return 0, io.EOF
	}
	k := min(len(p), c.size-c.n)
	clear(p[:k])
	c.n += k
	return k, nil
}

func (c *countingBody) Close() error { return nil }

// Memory exhaustion through the trailer read-ahead, over time: what a
// request held to check its declared trailers goes back to the process's
// budget once it is done. Were it kept, a few uploads would spend the
// budget for good, and every later upload with a forged trailer would go
// upstream (to fail at EOF) instead of being refused before it.
func TestReadAheadHeldOnlyWhileTheRequestRuns(t *testing.T) {
	e := newEnv(t)
	v := e.login()
	const size = 8<<20 - 1 // just under what one read-ahead may hold
	upload := func(forged bool) *http.Request {
		r := newReq(http.MethodPost, "/upload", nil, withCookie(v))
		r.ContentLength = -1
		r.Trailer = http.Header{"X-Checksum": nil}
		r.Body = &testsupport.TrailerBody{N: size, OnEOF: func() {
			r.Trailer["X-Checksum"] = []string{"abc"}
			if forged {
				r.Trailer["X-Embed-Subject"] = []string{"mallory"}
			}
		}}
		return r
	}
	// Eight uploads together would hold the whole budget (64 MiB).
	for i := range 8 {
		if res := e.do(upload(false)); res.up.calls != 1 || res.up.got.ContentLength != size {
			t.Fatalf("upload %d: status %d, next called %d times; want it read ahead and passed", i, res.Code, res.up.calls)
		}
	}
	res := e.do(upload(true))
	wantStatus(t, res, http.StatusBadRequest)
	if res.up.calls != 0 {
		t.Fatalf("an upload with a forged trailer reached next")
	}
}

// Memory exhaustion through Caddy's error routes: after an upstream
// failure the gateway returns the error, and handle_errors runs with the
// same request, its read-ahead buffer still the body it may send on. The
// hold lasts until the request is done (its context ends), not until the
// gateway returns: eight failed uploads whose error routes still run
// hold the budget, so a ninth streams; once they end, a forged trailer is
// refused up front again.
func TestReadAheadHeldThroughCaddyErrorRoutes(t *testing.T) {
	e := newEnv(t)
	v := e.login()
	const size = 8<<20 - 1
	failing := func(http.ResponseWriter, *http.Request) error {
		return errors.New("dial tcp 127.0.0.1:9: connect: connection refused")
	}
	upload := func(ctx context.Context, forged bool) *http.Request {
		r := newReq(http.MethodPost, "/upload", nil, withCookie(v)).WithContext(ctx)
		r.ContentLength = -1
		r.Trailer = http.Header{"X-Checksum": nil}
		r.Body = &testsupport.TrailerBody{N: size, OnEOF: func() {
			if forged {
				r.Trailer["X-Embed-Subject"] = []string{"mallory"}
			}
		}}
		return r
	}
	var inErrorRoutes []context.CancelFunc
	for i := range 8 {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		r := upload(ctx, false)
		if err := e.gw.ServeHTTP(httptest.NewRecorder(), r, failing); err == nil || r.ContentLength != size {
			t.Fatalf("upload %d: %v, length %d; want an error for Caddy and the body read ahead", i, err, r.ContentLength)
		}
		inErrorRoutes = append(inErrorRoutes, cancel)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := e.doWith(upload(ctx, true), &upstream{})
	if res.up.calls != 1 || res.up.got.ContentLength != -1 {
		t.Fatalf("with the budget held by error routes: status %d, next called %d times; want the body streamed to next", res.Code, res.up.calls)
	}
	for _, end := range inErrorRoutes {
		end()
	}
	// The holds come back as the contexts' AfterFuncs run.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		ctx, cancel := context.WithCancel(context.Background())
		res = e.doWith(upload(ctx, true), &upstream{})
		cancel()
		if res.up.calls == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the error routes' requests ended, and the budget did not come back")
		}
	}
	wantStatus(t, res, http.StatusBadRequest)
}
