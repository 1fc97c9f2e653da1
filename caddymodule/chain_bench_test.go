package caddymodule_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	_ "github.com/embedgate/embedgate/bench/floor" // bench_floor, the wire alone
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

// chainServers loads one Caddy config with three servers in front of the
// same upstream, "plain", "floor" (bench/floor: embed_session's wire with
// none of its work) and "protected", and returns them by name. The
// listeners are bound but unused: requests go to Server.ServeHTTP.
func chainServers(b *testing.B) map[string]*caddyhttp.Server {
	b.Helper()
	upAddr := "127.0.0.1:9 {\n\t\ttransport chain_bench\n\t}"
	plain, floor, protected := testsupport.FreePort(b), testsupport.FreePort(b), testsupport.FreePort(b)
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
	bench_floor
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
`, b.TempDir(), plain, upAddr, floor, upAddr, protected, chainSecret, chainSealKey, upAddr)
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
		case strings.HasSuffix(srv.Listen[0], fmt.Sprintf(":%d", floor)):
			out["floor"] = srv
		case strings.HasSuffix(srv.Listen[0], fmt.Sprintf(":%d", protected)):
			out["protected"] = srv
		}
	}
	if out["plain"] == nil || out["floor"] == nil || out["protected"] == nil {
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

// BenchmarkChainPaired sends a plain-with-cookie, a floor and a protected
// request in turn, one of each per iteration in a turning order, and times
// each: all three see the same machine, the same GC cycles and the same
// drift, which on a shared VM move the separate runs above by more than the
// gaps between them. It reports each side's ns per request and, as medians
// of blocks of 1,000 iterations, what the wire costs over plain
// (wire-ns/op), what the gateway's own work costs over the wire
// (own-ns/op), and the sum (over-plain-ns/op). The same three come again
// in CPU time of the benchmark's thread (wire-cpu-ns/op and so on, where
// the OS has a per-thread CPU clock): a VM's steal and preemption move
// wall time by ±15 % between runs here, CPU time by ±4 %. Each side runs
// under a pprof label, so a CPU profile splits by side:
//
//	go test -run '^$' -bench ChainPaired -benchtime 150000x -cpuprofile cpu.pprof ./caddymodule/
//	go tool pprof -tags cpu.pprof; go tool pprof -tagfocus side=protected -top cpu.pprof
func BenchmarkChainPaired(b *testing.B) {
	srvs := chainServers(b)
	cookie := chainLogin(b, srvs["protected"])
	names := [3]string{"plain", "floor", "protected"}
	var sides [3]struct {
		srv  http.Handler
		req  *http.Request
		w    *discardWriter
		sum  time.Duration
		last time.Duration // this block's total
		cpu  time.Duration // this block's thread CPU time
		lab  context.Context
	}
	for i := range sides {
		sides[i].srv = srvs[names[i]]
		sides[i].req = httptest.NewRequest(http.MethodGet, "http://"+chainHost+"/", nil)
		sides[i].req.Header.Set("Cookie", cookie)
		sides[i].w = &discardWriter{h: http.Header{}}
		sides[i].lab = pprof.WithLabels(context.Background(), pprof.Labels("side", names[i]))
	}
	const block = 1000
	var wire, own, over, wireCPU, ownCPU, overCPU []float64
	// One thread for the whole loop, so its CPU clock is the requests'.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		// The order turns every iteration, so that no side always runs
		// right after the same other one (and its warmed caches).
		for k := range sides {
			s := &sides[(n+k)%len(sides)]
			r := s.req.Clone(s.req.Context())
			clear(s.w.h)
			s.w.status = 0
			pprof.SetGoroutineLabels(s.lab)
			cpu := threadCPU()
			start := time.Now()
			s.srv.ServeHTTP(s.w, r)
			s.last += time.Since(start)
			s.cpu += threadCPU() - cpu
		}
		if n++; n%block == 0 {
			p, f, q := float64(sides[0].last)/block, float64(sides[1].last)/block, float64(sides[2].last)/block
			wire, own, over = append(wire, f-p), append(own, q-f), append(over, q-p)
			p, f, q = float64(sides[0].cpu)/block, float64(sides[1].cpu)/block, float64(sides[2].cpu)/block
			wireCPU, ownCPU, overCPU = append(wireCPU, f-p), append(ownCPU, q-f), append(overCPU, q-p)
			for i := range sides {
				sides[i].sum += sides[i].last
				sides[i].last, sides[i].cpu = 0, 0
			}
		}
	}
	b.StopTimer()
	for i := range sides {
		if st := sides[i].w.status; st != 0 && st != http.StatusOK {
			b.Fatalf("%s: status %d", names[i], st)
		}
	}
	if len(over) == 0 {
		return // fewer than one block: nothing to report
	}
	done := float64(len(over) * block)
	for i, name := range names {
		b.ReportMetric(float64(sides[i].sum)/done, name+"-ns/req")
	}
	b.ReportMetric(median(wire), "wire-ns/op")
	b.ReportMetric(median(own), "own-ns/op")
	b.ReportMetric(median(over), "over-plain-ns/op")
	if threadCPU() != 0 {
		b.ReportMetric(median(wireCPU), "wire-cpu-ns/op")
		b.ReportMetric(median(ownCPU), "own-cpu-ns/op")
		b.ReportMetric(median(overCPU), "over-plain-cpu-ns/op")
	}
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}
