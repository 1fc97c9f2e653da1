package policy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/embedgate/embedgate/internal/reason"
)

func newBoundary() *Boundary { return NewBoundary([]string{"X-Org-Id"}) }

func admitted(t *testing.T, r *http.Request) error {
	t.Helper()
	b := newBoundary()
	err := b.Admit(r)
	if err == nil {
		var hold *AheadHold
		hold, err = b.ReadTrailersAhead(r)
		hold.Release()
	}
	if err != nil && reason.Of(err) != reason.BadRequest {
		t.Fatalf("refusal without bad_request: %v", err)
	}
	return err
}

// Upgrade tunnels: after 101 the proxy copies bytes it never parses, so any
// protocol but WebSocket would carry requests no check sees (h2c smuggling).
func TestBoundaryUpgradeOnlyWebSocket(t *testing.T) {
	for _, c := range []struct {
		upgrade []string
		ok      bool
	}{
		{[]string{"websocket"}, true},
		{[]string{"WebSocket"}, true},
		{[]string{" websocket "}, true},
		{[]string{"h2c"}, false},
		{[]string{"foo"}, false},
		{[]string{"websocket, h2c"}, false},
		{[]string{"websocket", "h2c"}, false},
		{[]string{""}, false},
		{[]string{"websocket/13"}, false},
	} {
		r := httptest.NewRequest("GET", "https://portal.test/ws", nil)
		r.Header["Upgrade"] = c.upgrade
		r.Header.Set("Connection", "Upgrade")
		if err := admitted(t, r); (err == nil) != c.ok {
			t.Errorf("Upgrade %q: %v, want ok=%v", c.upgrade, err, c.ok)
		}
	}
	for _, c := range []struct {
		major    int
		protocol string
		ok       bool
	}{{2, "websocket", true}, {2, "", false}, {2, "connect-udp", false}, {2, "WebSocket", false}, {1, "websocket", false},
		{3, "websocket", true}, {3, "connect-udp", false}} {
		// HTTP/2 and HTTP/3 carry the path (:path); an authority-form
		// target here would parse as a path beginning "//".
		r := httptest.NewRequest("CONNECT", "/ws", nil)
		r.Host, r.ProtoMajor = "portal.test", c.major
		if c.major == 3 {
			r.Proto = c.protocol // quic-go's HTTP/3 carries :protocol here
		} else if c.protocol != "" {
			r.Header.Set(":protocol", c.protocol)
		}
		if err := admitted(t, r); (err == nil) != c.ok {
			t.Errorf("HTTP/%d CONNECT :protocol %q: %v, want ok=%v", c.major, c.protocol, err, c.ok)
		}
	}
}

// Hop-by-hop deletion: Connection naming a header the gateway sets makes the
// proxy delete the gateway's own copy after it was set.
func TestBoundaryConnectionNamingProtected(t *testing.T) {
	for _, v := range []string{"X-Embed-Tenant", "x-embed-subject", "keep-alive, X-Embed-Subject", "X_Embed_Tenant", "X.Embed.Subject", "X-EMBED-ANYTHING", "x-org-id", "X_Org_Id", "x.org.id"} {
		r := httptest.NewRequest("GET", "https://portal.test/", nil)
		r.Header.Set("Connection", v)
		if admitted(t, r) == nil {
			t.Errorf("Connection: %s passed", v)
		}
	}
	for _, v := range []string{"keep-alive", "close", "Upgrade", "X-Org-Ids", "X-Embedded"} {
		r := httptest.NewRequest("GET", "https://portal.test/", nil)
		r.Header.Set("Connection", v)
		if err := admitted(t, r); err != nil {
			t.Errorf("Connection: %s refused: %v", v, err)
		}
	}
}

// Request trailers: a declared protected trailer would arrive after the
// headers were checked and stripped.
func TestBoundaryDeclaredProtectedTrailer(t *testing.T) {
	r := httptest.NewRequest("POST", "https://portal.test/", strings.NewReader("x"))
	r.Trailer = http.Header{"X-Embed-Subject": nil}
	if admitted(t, r) == nil {
		t.Error("declared X-Embed-Subject trailer passed")
	}
	r = httptest.NewRequest("POST", "https://portal.test/", strings.NewReader("x"))
	r.Header.Set("Trailer", "X-Checksum, x_org_id")
	if admitted(t, r) == nil {
		t.Error("Trailer header naming a forward_claim header passed")
	}
	r = httptest.NewRequest("POST", "https://portal.test/", strings.NewReader("x"))
	r.Trailer = http.Header{"X-Checksum": nil}
	if err := admitted(t, r); err != nil {
		t.Errorf("harmless trailer refused: %v", err)
	}
}

// A protected trailer that turns up at EOF (net/http takes every trailer
// sent once any is declared) is removed and the body fails.
func TestBoundaryTrailerAtEOF(t *testing.T) {
	r := httptest.NewRequest("POST", "https://portal.test/", io.NopCloser(strings.NewReader("body")))
	r.ContentLength = -1
	r.Trailer = http.Header{"X-Checksum": nil}
	if err := newBoundary().Admit(r); err != nil { // the guard alone, no read-ahead
		t.Fatal(err)
	}
	// What net/http does at EOF: fill the declared map, here with more.
	body := r.Body
	r.Trailer["X-Checksum"] = []string{"abc"}
	r.Trailer["X-Embed-Subject"] = []string{"mallory"}
	_, err := io.ReadAll(body)
	if !errors.Is(err, ErrProtectedTrailer) {
		t.Fatalf("read: %v, want ErrProtectedTrailer", err)
	}
	if _, ok := r.Trailer["X-Embed-Subject"]; ok || r.Trailer.Get("X-Checksum") != "abc" {
		t.Fatalf("trailers after EOF: %v", r.Trailer)
	}
	// A clean body reads to EOF as usual.
	r = httptest.NewRequest("POST", "https://portal.test/", io.NopCloser(strings.NewReader("body")))
	r.ContentLength = -1
	if err := admitted(t, r); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r.Body); err != nil || string(b) != "body" {
		t.Fatalf("clean body: %q %v", b, err)
	}
	// A body of known length and no declared trailer is not wrapped.
	r = httptest.NewRequest("POST", "https://portal.test/", strings.NewReader("body"))
	orig := r.Body
	_ = admitted(t, r)
	if r.Body != orig {
		t.Error("a fixed-length body without trailers was wrapped")
	}
}

// Host spellings that normalize to no configured host would escape the host
// to tenant binding on a catch-all site.
func TestCheckHost(t *testing.T) {
	for _, h := range []string{
		"portal.test", "portal.test.", "PORTAL.test:8443", "portal.test:443", "localhost", "127.0.0.1", "127.0.0.1:1",
		"[::1]", "[::1]:8443", "my_app.internal", "a.b-c.d:65535",
		strings.Repeat("a", 63) + ".test", strings.Repeat("a.", 126) + "a", "x",
	} {
		if err := CheckHost(h); err != nil {
			t.Errorf("%q refused: %v", h, err)
		}
	}
	for _, h := range []string{
		"", "acme.portal.test:80:80", "acme.portal.test..", "acme.portal.test:443:1", ".portal.test", "a..b",
		"portal.test:", "portal.test:0443", "portal.test:0", "portal.test:65536", "portal.test:99999", "portal.test:8a",
		"-a.test", "a-.test", "[::1", "[::1]x", "[::1]:", "[fe80::1%eth0]", "[127.0.0.1]", "::1", "porta l.test",
		"portal.test/x", "user@portal.test", "portal.test-", "portal.-test", ".", "..", strings.Repeat("a", 64) + ".test", strings.Repeat("a.", 127) + "aa",
	} {
		if err := CheckHost(h); reason.Of(err) != reason.BadRequest {
			t.Errorf("%q: %v, want bad_request", h, err)
		}
	}
}

// Path parameters: servlet containers drop ";params" and then resolve "..",
// so /workflows/W1/..;/W2 serves W2 to a rule that read W1.
func TestCanonicalPathRefusesPathParameters(t *testing.T) {
	for _, p := range []string{"/workflows/W1/%252e%252e/W2", "/workflows/W1/..%253B/W2", "/workflows/W1/..;/W2", "/workflows/W1/..;x=1/W2", "/workflows/W1/.;/..;/W2", "/workflows/W1/..%3B/W2", "/workflows/W1/..%3b/W2", "/workflows/W1;x=1", "/a/../b", "/a//b", "/a/%2e%2e/b", "/a%2fb", "/a\\b"} {
		r := httptest.NewRequest("GET", "https://portal.test/", nil)
		if err := setPath(r, p); err != nil {
			t.Fatal(err)
		}
		if CanonicalPath(r) {
			t.Errorf("%s: canonical", p)
		}
	}
	for _, p := range []string{"/", "/workflows/W1", "/workflows/W1/", "/a/b.c", "/a/%20b"} {
		r := httptest.NewRequest("GET", "https://portal.test/", nil)
		if err := setPath(r, p); err != nil {
			t.Fatal(err)
		}
		if !CanonicalPath(r) {
			t.Errorf("%s: not canonical", p)
		}
	}
}

// setPath sets r's path as a server parses it from the request line.
func setPath(r *http.Request, escaped string) error {
	u, err := url.ParseRequestURI(escaped)
	if err != nil {
		return err
	}
	r.URL = u
	return nil
}

// Method-override headers are honoured by many frameworks: a cross-site GET
// carrying X-HTTP-Method-Override: DELETE would pass as a safe method.
func TestBoundaryRemovesMethodOverrideAndHTTP2Settings(t *testing.T) {
	r := httptest.NewRequest("GET", "https://portal.test/", nil)
	for _, h := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "HTTP2-Settings"} {
		r.Header.Set(h, "DELETE")
	}
	r.Header["X_HTTP_Method_Override"] = []string{"DELETE"}
	r.Header["X.HTTP.Method.Override"] = []string{"DELETE"}
	r.Header["X.Embed.Subject"] = []string{"mallory"}
	r.Header["x-method-override"] = []string{"DELETE"}
	r.Header.Set("X-Embed-Subject", "mallory")
	r.Header.Set("X-Org-Id", "o2")
	r.Header.Set("X-Request-Id", "keep")
	if err := admitted(t, r); err != nil {
		t.Fatal(err)
	}
	if len(r.Header) != 1 || r.Header.Get("X-Request-Id") != "keep" {
		t.Fatalf("headers left: %v", r.Header)
	}
}

// Host and path override headers: a client's Forwarded: host=other.test
// would have a Rack or Spring app read another tenant's host than the one
// the session is bound to, and X-Original-URL an IIS or Laminas app another
// path than the one require rules checked. Every spelling an app may fold
// into one of them goes; X-Forwarded-For and -Proto stay Caddy's.
// X-Forwarded-Host goes too: behind trusted_proxies Caddy's proxy passes a
// client's on as it came (a load balancer that sets none, as AWS's ALB,
// lets it through), and Express in trust-proxy mode, Symfony or Laravel
// would read that host; removed, Caddy sets it from the checked Host.
func TestBoundaryRemovesHostAndPathOverrides(t *testing.T) {
	r := httptest.NewRequest("GET", "https://portal.test/", nil)
	for _, h := range []string{"Forwarded", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server",
		"X-Forwarded-Scheme", "X-Forwarded-Ssl", "X-Forwarded-Uri", "X-Forwarded-Path", "Front-End-Https",
		"X-Url-Scheme", "X-Original-URL", "X-Original-URI", "X-Rewrite-URL", "X-Original-Host"} {
		r.Header.Set(h, "host=globex.test;proto=https")
	}
	r.Header["forwarded"] = []string{"host=globex.test"}
	r.Header["X_Original_Url"] = []string{"/admin"}
	r.Header["X.Forwarded.Prefix"] = []string{"/globex"}
	r.Header["x_forwarded_host"] = []string{"globex.test"}
	for _, keep := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Request-Id"} {
		r.Header.Set(keep, "keep")
	}
	if err := admitted(t, r); err != nil {
		t.Fatal(err)
	}
	if len(r.Header) != 3 {
		t.Fatalf("headers left: %v", r.Header)
	}
	for _, keep := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Request-Id"} {
		if r.Header.Get(keep) != "keep" {
			t.Errorf("%s removed", keep)
		}
	}
}

// TRACE and TRACK ask the server to echo the request: an app that does
// would hand the identity headers and the assertion back to the client.
func TestBoundaryRefusesTrace(t *testing.T) {
	for _, m := range []string{"TRACE", "TRACK", "trace"} {
		r := httptest.NewRequest(m, "https://portal.test/", nil)
		if err := admitted(t, r); reason.Of(err) != reason.BadRequest {
			t.Errorf("%s: %v, want bad_request", m, err)
		}
	}
	for _, m := range []string{"GET", "OPTIONS", "PROPFIND"} {
		if err := admitted(t, httptest.NewRequest(m, "https://portal.test/", nil)); err != nil {
			t.Errorf("%s refused: %v", m, err)
		}
	}
}

// A refused request is left as it was: nothing is half-applied.
func TestBoundaryRefusalChangesNothing(t *testing.T) {
	r := httptest.NewRequest("GET", "https://portal.test/", nil)
	r.Header.Set("Connection", "X-Embed-Subject")
	r.Header.Set("X-Embed-Subject", "mallory")
	if admitted(t, r) == nil {
		t.Fatal("passed")
	}
	if r.Header.Get("X-Embed-Subject") != "mallory" {
		t.Error("a refused request was changed")
	}
}

// A trailer sent without being declared, once another one is declared, is
// caught when the body is read ahead: 400 before anything goes upstream.
func TestBoundaryUndeclaredProtectedTrailerReadAhead(t *testing.T) {
	body := &trailerBody{r: strings.NewReader("data")}
	r := httptest.NewRequest("POST", "https://portal.test/", body)
	r.ContentLength = -1
	r.Trailer = http.Header{"X-Checksum": nil}
	body.onEOF = func() { r.Trailer["X-Checksum"] = []string{"abc"}; r.Trailer["X.Embed.Subject"] = []string{"mallory"} }
	if err := admitted(t, r); err == nil {
		t.Fatal("an undeclared X.Embed.Subject trailer passed")
	}
	// A harmless one passes, with its body intact.
	body = &trailerBody{r: strings.NewReader("data")}
	r = httptest.NewRequest("POST", "https://portal.test/", body)
	r.ContentLength = -1
	r.Trailer = http.Header{"X-Checksum": nil}
	body.onEOF = func() { r.Trailer["X-Checksum"] = []string{"abc"} }
	if err := admitted(t, r); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r.Body); err != nil || string(b) != "data" || r.Trailer.Get("X-Checksum") != "abc" {
		t.Fatalf("body %q %v, trailers %v", b, err, r.Trailer)
	}
}

// trailerBody fills trailers at EOF, as net/http does.
type trailerBody struct {
	r     io.Reader
	onEOF func()
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if errors.Is(err, io.EOF) && b.onEOF != nil {
		b.onEOF()
		b.onEOF = nil
	}
	return n, err
}

// Once the guard refuses, it keeps refusing: a buffering proxy that reads
// again after the error must not see a clean end of the body.
func TestTrailerGuardStaysRefused(t *testing.T) {
	r := httptest.NewRequest("POST", "https://portal.test/", io.NopCloser(strings.NewReader("x")))
	r.ContentLength = -1
	r.Trailer = http.Header{}
	g := &trailerGuard{ReadCloser: r.Body, req: r, b: newBoundary()}
	r.Trailer["X-Embed-Tenant"] = []string{"beta"}
	if _, err := io.ReadAll(g); !errors.Is(err, ErrProtectedTrailer) {
		t.Fatalf("first read to EOF: %v", err)
	}
	if n, err := g.Read(make([]byte, 8)); n != 0 || !errors.Is(err, ErrProtectedTrailer) {
		t.Fatalf("read after refusal: %d %v", n, err)
	}
}

// The boundary runs on every request: for an ordinary one it allocates
// nothing.
func TestAdmitAllocatesNothing(t *testing.T) {
	b := newBoundary()
	r := httptest.NewRequest("GET", "https://portal.test:8443/deals?a=1", nil)
	r.Header.Set("Connection", "keep-alive")
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Cookie", "x=1")
	if n := testing.AllocsPerRun(200, func() { _ = b.Admit(r) }); n != 0 {
		t.Fatalf("Admit: %v allocs per request", n)
	}
}
