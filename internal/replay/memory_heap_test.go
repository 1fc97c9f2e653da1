package replay_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/replay/replaytest"
)

// heapInUse is runtime.MemStats.HeapInuse after a full collection. Under
// -race the detector's shadow memory is not Go heap and is not counted.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

const mib = 1 << 20

// TestMemoryMillionEntries holds 1,000,000 live replay entries in one Memory
// and reports the heap they take (target: at most 256 MiB in use), then
// moves past their window and checks that a sweep frees them.
//
// Keys are the shape real ones have: a tenant id and a 36-character jti
// (a UUID), each held for a token's whole window (150 s: 120 s of lifetime
// plus 30 s of leeway). Time is the injected clock: no waiting.
func TestMemoryMillionEntries(t *testing.T) {
	const (
		entries = 1_000_000
		ttl     = 150 * time.Second
		limit   = 256 * mib
	)
	ctx := context.Background()
	clock := replaytest.NewClock(time.Unix(1_700_000_000, 0))
	// No background sweep while the heap is measured: the test runs it.
	m := replay.NewMemoryEvery(clock.Now, time.Hour)
	t.Cleanup(m.Close)

	jti := func(i int) string { return fmt.Sprintf("%08x-6f1c-4b7a-9d2e-%012x", i, i*7919) }
	tenant := func(i int) string { return fmt.Sprintf("tenant-%04d", i%1000) }

	base := heapInUse()
	start := time.Now()
	for i := 0; i < entries; i++ {
		if err := m.Claim(ctx, tenant(i), jti(i), ttl); err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
	}
	filled := time.Now()
	full := heapInUse()
	used, _, _ := m.Sizes()
	if used != entries {
		t.Fatalf("%d entries stored, want %d", used, entries)
	}
	// Still live: a replay of the first, middle and last token is refused
	// (on a machine so slow that filling took longer than the window, the
	// first ones have expired: only the last is checked).
	samples := []int{0, entries / 2, entries - 1}
	if time.Since(start) >= ttl-time.Second {
		t.Logf("filling took %s, close to the %s window: checking the last entry only", filled.Sub(start), ttl)
		samples = samples[2:]
	}
	for _, i := range samples {
		if reason.Of(m.Claim(ctx, tenant(i), jti(i), ttl)) != reason.Replayed {
			t.Fatalf("entry %d is not live", i)
		}
	}
	growth := full - min(base, full)
	t.Logf("%d live entries: HeapInuse %.1f MiB (%.1f MiB over the %.1f MiB before, %d B/entry); filled in %s",
		entries, float64(full)/mib, float64(growth)/mib, float64(base)/mib, growth/entries, filled.Sub(start).Round(time.Millisecond))
	if full > limit {
		t.Errorf("HeapInuse %.1f MiB with %d live entries, limit %d MiB", float64(full)/mib, entries, limit/mib)
	}

	// Past the window by the injected clock, then a sweep by that clock.
	clock.Advance(ttl + time.Second)
	m.SweepByClock()
	swept := heapInUse()
	if used, _, _ = m.Sizes(); used != 0 {
		t.Fatalf("%d entries left after the sweep, want 0", used)
	}
	freed := full - min(swept, full)
	t.Logf("after the sweep: HeapInuse %.1f MiB (%.1f MiB freed, %.0f%% of the growth)",
		float64(swept)/mib, float64(freed)/mib, 100*float64(freed)/float64(max(growth, 1)))
	// The entries go, and with them the shards' tables: a table left under
	// a quarter of its peak is rebuilt (Go maps never shrink by themselves).
	if freed < growth*9/10 {
		t.Errorf("sweep freed %.1f MiB, less than 90%% of the %.1f MiB the entries took", float64(freed)/mib, float64(growth)/mib)
	}
	// A token of the window past is accepted again (its jti is forgotten).
	if err := m.Claim(ctx, tenant(0), jti(0), ttl); err != nil {
		t.Fatalf("claim after the window: %v", err)
	}
}
