package policy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// A request path an app would read a host from: Node's
// new URL(req.url, base) and Python's urlsplit take "//globex.test/x" as
// host globex.test, while the session is bound to the Host the gateway
// checked. Refused in every spelling that decodes or parses to "//", and
// the asterisk form on anything but OPTIONS.
func TestBoundaryRefusesHostLikePaths(t *testing.T) {
	for _, c := range []struct {
		method, target string
		ok             bool
	}{
		{"GET", "//globex.test/deals", false},
		{"GET", "///globex.test/deals", false},
		{"GET", "/%2Fglobex.test/deals", false},
		{"GET", "/%5Cglobex.test/deals", false},
		{"POST", "//globex.test/deals", false},
		{"GET", "/%09/globex.test/deals", false},
		{"GET", "/%0D%0A/globex.test/deals", false},
		{"GET", "/%09%5Cglobex.test/deals", false},
		{"GET", "http:globex.test/deals", false},
		{"GET", "/%09deals", true},
		{"GET", "*", false},
		{"OPTIONS", "*", true},
		{"GET", "/deals//x", true},
		{"GET", "/a%2F%2Fb", true},
		{"GET", "/", true},
	} {
		// As net/http reads a request line: a target beginning "//" is
		// a path there, not an authority.
		u, err := url.ParseRequestURI(c.target)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(c.method, "/", nil)
		r.RequestURI, r.URL = c.target, u
		if err := admitted(t, r); (err == nil) != c.ok {
			t.Errorf("%s %s: %v, want ok=%v", c.method, c.target, err, c.ok)
		}
	}
}

// Request trailers that route or authenticate a request, or that the
// boundary removes from the headers, are refused wherever they are seen
// (declared, read ahead, at EOF): a server that merges trailers into the
// headers (Apache's MergeTrailers) would take Cookie: <the gateway's own
// cookie>, Host: globex.test or Forwarded: host=globex.test as sent up
// front. A checksum trailer passes.
func TestBoundaryRefusesRoutingTrailers(t *testing.T) {
	for _, name := range []string{"Cookie", "cookie", "Host", "Authorization", "Forwarded", "X-Forwarded-Host",
		"X-Forwarded-For", "x_forwarded_for", "X-Http-Method-Override", "X-Original-Url", "Content-Length", "Trailer"} {
		r := httptest.NewRequest("POST", "https://portal.test/", strings.NewReader("x"))
		r.Trailer = http.Header{http.CanonicalHeaderKey(name): nil}
		if admitted(t, r) == nil {
			t.Errorf("declared %s trailer passed", name)
		}
		r = httptest.NewRequest("POST", "https://portal.test/", strings.NewReader("x"))
		r.Header.Set("Trailer", "X-Checksum, "+name)
		if admitted(t, r) == nil {
			t.Errorf("Trailer header naming %s passed", name)
		}
		// Sent without being declared, once another one is.
		body := &trailerBody{r: strings.NewReader("data")}
		r = httptest.NewRequest("POST", "https://portal.test/", body)
		r.ContentLength = -1
		r.Trailer = http.Header{"X-Checksum": nil}
		body.onEOF = func() { r.Trailer["X-Checksum"] = []string{"abc"}; r.Trailer[name] = []string{"planted"} }
		if admitted(t, r) == nil {
			t.Errorf("undeclared %s trailer passed the read-ahead", name)
		}
	}
	for _, name := range []string{"X-Checksum", "Digest", "Server-Timing"} {
		r := httptest.NewRequest("POST", "https://portal.test/", strings.NewReader("x"))
		r.Trailer = http.Header{name: nil}
		if err := admitted(t, r); err != nil {
			t.Errorf("%s trailer refused: %v", name, err)
		}
	}
}

// countingBody counts what was read of it.
type countingBody struct {
	r io.Reader
	n int
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// Admit reads nothing of a body, declared trailers or not: it runs before
// any session is checked, and a read-ahead there let anyone have the
// gateway buffer 8 MiB per request (40 connections took it from 71 MB to
// 626 MB). ReadTrailersAhead, for a request about to go upstream, does.
func TestAdmitReadsNoBodyAhead(t *testing.T) {
	body := &countingBody{r: strings.NewReader(strings.Repeat("x", 1<<16))}
	r := httptest.NewRequest("POST", "https://portal.test/", body)
	r.ContentLength = -1
	r.Trailer = http.Header{"X-Checksum": nil}
	b := newBoundary()
	if err := b.Admit(r); err != nil {
		t.Fatal(err)
	}
	if body.n != 0 {
		t.Fatalf("Admit read %d bytes of the body", body.n)
	}
	hold, err := b.ReadTrailersAhead(r)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Release()
	if body.n != 1<<16 {
		t.Fatalf("ReadTrailersAhead read %d bytes, want the whole body", body.n)
	}
}

// A WebSocket handshake that declares trailers is refused: its body is
// the tunnel, and reading it ahead for the trailers would hold the
// handshake until the client sent 8 MiB or closed.
func TestBoundaryRefusesTunnelWithTrailers(t *testing.T) {
	r := httptest.NewRequest("CONNECT", "/ws", nil)
	r.ProtoMajor = 2
	r.Header.Set(":protocol", "websocket")
	r.Trailer = http.Header{"X-Checksum": nil}
	if admitted(t, r) == nil {
		t.Error("an HTTP/2 WebSocket handshake declaring a trailer passed")
	}
	r = httptest.NewRequest("GET", "/ws", nil)
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Trailer", "X-Checksum")
	if admitted(t, r) == nil {
		t.Error("a WebSocket upgrade with a Trailer header passed")
	}
}
