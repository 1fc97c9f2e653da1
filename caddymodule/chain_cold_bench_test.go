package caddymodule_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"testing"
	"time"
)

// evictBuf is written through before each timed request of
// BenchmarkChainCold, to push the server's code and data out of the caches.
var evictBuf = make([]byte, 8<<20)

func evict(n int) {
	for i := 0; i < n; i += 64 {
		evictBuf[i]++
	}
}

// BenchmarkChainCold is the floor and the protected side of
// BenchmarkChainPaired, each request timed after n bytes of other memory
// were written, as the kernel's network path and the other connections do
// between two requests of a real server: the gateway's own work measured
// with its code and data cold (own-cpu-ns/op, the median of blocks of 500
// differences in the thread's CPU time). With 8 MiB evicted it comes to
// what the load harness measures, about twice what the sequential
// benchmarks show with warm caches.
//
//	go test -run '^$' -bench ChainCold -benchtime 20000x ./caddymodule/
func BenchmarkChainCold(b *testing.B) {
	srvs := chainServers(b)
	cookie := chainLogin(b, srvs["protected"])
	for _, size := range []int{0, 1 << 20, 8 << 20} {
		b.Run(fmt.Sprintf("evict=%dKiB", size>>10), func(b *testing.B) {
			runtime.LockOSThread() // the thread CPU clock must be this goroutine's
			defer runtime.UnlockOSThread()
			benchmarkChainCold(b, srvs["floor"], srvs["protected"], cookie, size)
		})
	}
}

func benchmarkChainCold(b *testing.B, floor, protected http.Handler, cookie string, size int) {
	sides := [2]http.Handler{floor, protected}
	var sum [2]time.Duration
	var floorBlocks, own []float64
	w := &discardWriter{h: http.Header{}}
	req := httptest.NewRequest(http.MethodGet, "http://"+chainHost+"/", nil)
	req.Header.Set("Cookie", cookie)
	n := 0
	for b.Loop() {
		for j := range 2 {
			side := (n + j) % 2
			r := req.Clone(req.Context())
			clear(w.h)
			w.status = 0
			evict(size)
			start := threadCPU()
			sides[side].ServeHTTP(w, r)
			sum[side] += threadCPU() - start
			if w.status != 0 && w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		}
		if n++; n%500 == 0 {
			floorBlocks = append(floorBlocks, float64(sum[0])/500)
			own = append(own, float64(sum[1]-sum[0])/500)
			sum = [2]time.Duration{}
		}
	}
	if len(own) == 0 {
		return
	}
	slices.Sort(floorBlocks)
	slices.Sort(own)
	b.ReportMetric(floorBlocks[len(floorBlocks)/2], "floor-cpu-ns/req")
	b.ReportMetric(own[len(own)/2], "own-cpu-ns/op")
}
