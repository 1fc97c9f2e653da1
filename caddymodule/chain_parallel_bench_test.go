package caddymodule_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkChainParallel is BenchmarkChainPaired from every P at once, all
// with the one session cookie, as the load harness sends it: what the
// sequential benchmarks cannot show, the cost of state that every request
// writes and all CPUs share (a lock's cache line, a counter). Each worker
// sends a plain-with-cookie, a floor and a protected request in turn, in
// a turning order, and times each, so the three sides see the same
// moments of a drifting VM. It reports each side's wall ns per request
// and the differences (wire-ns/op, own-ns/op, over-plain-ns/op).
//
//	go test -run '^$' -bench ChainParallel -cpu 2 -benchtime 200000x ./caddymodule/
func BenchmarkChainParallel(b *testing.B) {
	srvs := chainServers(b)
	cookie := chainLogin(b, srvs["protected"])
	names := [3]string{"plain", "floor", "protected"}
	var sums [3]atomic.Int64
	var reqs atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var reqsOf [3]*http.Request
		var local [3]time.Duration
		w := &discardWriter{h: http.Header{}}
		for i, name := range names {
			reqsOf[i] = httptest.NewRequest(http.MethodGet, "http://"+chainHost+"/", nil)
			reqsOf[i].Header.Set("Cookie", cookie)
			_ = name
		}
		n := 0
		for pb.Next() {
			for j := range 3 {
				side := (n + j) % 3
				r := reqsOf[side].Clone(reqsOf[side].Context())
				clear(w.h)
				w.status = 0
				start := time.Now()
				srvs[names[side]].ServeHTTP(w, r)
				local[side] += time.Since(start)
				if w.status != 0 && w.status != http.StatusOK {
					b.Errorf("%s: status %d", names[side], w.status)
					return
				}
			}
			n++
		}
		for i := range local {
			sums[i].Add(int64(local[i]))
		}
		reqs.Add(int64(n))
	})
	b.StopTimer()
	n := float64(reqs.Load())
	per := func(i int) float64 { return float64(sums[i].Load()) / n }
	b.ReportMetric(per(0), "plain-ns/req")
	b.ReportMetric(per(1), "floor-ns/req")
	b.ReportMetric(per(2), "protected-ns/req")
	b.ReportMetric(per(1)-per(0), "wire-ns/op")
	b.ReportMetric(per(2)-per(1), "own-ns/op")
	b.ReportMetric(per(2)-per(0), "over-plain-ns/op")
}
