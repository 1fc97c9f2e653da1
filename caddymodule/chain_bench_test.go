package caddymodule_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/embedgate/embedgate/internal/testsupport"
)

// The whole-chain benchmarks run a request through a provisioned Caddy
// HTTP server (Server.ServeHTTP: the replacer, the route, the handlers and
// reverse_proxy, to an app answering in process), once with
// reverse_proxy alone and once with embed_session in front of it. Their
// difference is what embed_session costs a proxied request, including what
// the handler benchmarks of internal/gateway cannot see: wrappers around
// the response writer, placeholders, header handling in the proxy.
//
//	go test -run XXX -bench Chain -benchmem ./caddymodule/

const (
	chainSecret  = "bench-secret-0123456789abcdef0123456789"
	chainSealKey = "bench-session-key-0123456789abcdef012345"
	chainHost    = "app.bench.test"
)

// chainServers loads one Caddy config with two servers in front of the same
// upstream, "plain" and "protected", and returns them by name. The
// listeners are bound but unused: requests go to Server.ServeHTTP.
func chainServers(b *testing.B) map[string]*caddyhttp.Server {
	b.Helper()
	upAddr := "127.0.0.1:9 {\n\t\ttransport chain_bench\n\t}"
	plain, protected := testsupport.FreePort(b), testsupport.FreePort(b)
	caddyfile := fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	storage file_system %s
	log {
		level ERROR
	}
}
http://:%d {
	bind 127.0.0.1
	reverse_proxy %s
}
http://:%d {
	bind 127.0.0.1
	embed_session {
		tenant bench {
			key %s
			frame_ancestors https://host.bench.test
		}
		session_key %s
		idle_timeout 8h
	}
	reverse_proxy %s
}
`, b.TempDir(), plain, upAddr, protected, chainSecret, chainSealKey, upAddr)
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = caddy.Stop() })
	app, err := caddy.ActiveContext().App("http")
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]*caddyhttp.Server{}
	for _, srv := range app.(*caddyhttp.App).Servers {
		switch {
		case strings.HasSuffix(srv.Listen[0], fmt.Sprintf(":%d", plain)):
			out["plain"] = srv
		case strings.HasSuffix(srv.Listen[0], fmt.Sprintf(":%d", protected)):
			out["protected"] = srv
		}
	}
	if out["plain"] == nil || out["protected"] == nil {
		b.Fatalf("servers not found in %v", app.(*caddyhttp.App).Servers)
	}
	return out
}

func init() { caddy.RegisterModule(chainTransport{}) }

// chainTransport is reverse_proxy's upstream, in process: the app answers
// a fixed small body without a socket, so the benchmark's variance is the
// server's, not loopback TCP's and the scheduler's.
type chainTransport struct{}

func (chainTransport) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.transport.chain_bench",
		New: func() caddy.Module { return new(chainTransport) },
	}
}

func (chainTransport) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	return nil
}

const chainBody = "hello from the app"

func (chainTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":   {"text/plain; charset=utf-8"},
			"Content-Length": {"18"},
		},
		ContentLength: int64(len(chainBody)),
		Body:          io.NopCloser(strings.NewReader(chainBody)),
		Request:       r,
	}, nil
}

// chainLogin exchanges a fresh token on srv and returns the Cookie header.
func chainLogin(b *testing.B, srv http.Handler) string {
	b.Helper()
	tok := testsupport.Mint(b, testsupport.HS256(chainSecret, ""), testsupport.Claims("bench", "user@bench.test", time.Now()))
	req := httptest.NewRequest(http.MethodPost, "http://"+chainHost+"/.embed/exchange", strings.NewReader(`{"token":"`+tok+`"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent {
		b.Fatalf("exchange: %d %s", rec.Code, rec.Body)
	}
	c := strings.SplitN(rec.Header().Get("Set-Cookie"), ";", 2)[0]
	if !strings.HasPrefix(c, "__Host-embed_session=") {
		b.Fatalf("no session cookie in %q", rec.Header().Values("Set-Cookie"))
	}
	return c
}

// discardWriter is a reusable response writer: the benchmark measures the
// server, not a recorder's buffers.
type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(code int)        { d.status = code }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func benchmarkChain(b *testing.B, srv http.Handler, cookie string) {
	req := httptest.NewRequest(http.MethodGet, "http://"+chainHost+"/", nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	w := &discardWriter{h: http.Header{}}
	// One request outside the loop checks the path and warms the
	// proxy's connection pool.
	srv.ServeHTTP(w, req.Clone(req.Context()))
	if w.status != 0 && w.status != http.StatusOK {
		b.Fatalf("status %d", w.status)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := req.Clone(req.Context())
		clear(w.h)
		w.status = 0
		srv.ServeHTTP(w, r)
	}
	b.StopTimer()
	if w.status != 0 && w.status != http.StatusOK {
		b.Fatalf("status %d", w.status)
	}
}

// BenchmarkChain is plain reverse_proxy against embed_session +
// reverse_proxy, with a valid session cookie, in one process and one run.
func BenchmarkChain(b *testing.B) {
	srvs := chainServers(b)
	cookie := chainLogin(b, srvs["protected"])
	b.Run("plain", func(b *testing.B) { benchmarkChain(b, srvs["plain"], "") })
	b.Run("protected", func(b *testing.B) { benchmarkChain(b, srvs["protected"], cookie) })
	// The plain proxy with the same Cookie header: what forwarding it costs
	// without the gateway, so the difference above is the gateway's own.
	b.Run("plain-with-cookie", func(b *testing.B) { benchmarkChain(b, srvs["plain"], cookie) })
}
