package replay_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/replay/replaytest"
)

func memoryHarness() replaytest.Harness {
	return replaytest.Harness{New: func(t *testing.T) (replay.Store, replay.Revocations, func(time.Duration)) {
		clock := replaytest.NewClock(time.Now())
		m := replay.NewMemory(clock.Now)
		t.Cleanup(m.Close)
		return m, m, clock.Advance
	}}
}

func TestMemoryStore(t *testing.T)       { replaytest.RunStore(t, memoryHarness()) }
func TestMemoryRevocations(t *testing.T) { replaytest.RunRevocations(t, memoryHarness()) }

func newFake(t *testing.T) (*replay.Memory, *replaytest.Clock) {
	clock := replaytest.NewClock(time.Unix(1_700_000_000, 0))
	m := replay.NewMemory(clock.Now)
	t.Cleanup(m.Close)
	return m, clock
}

func TestMemoryNonPositiveTTLIsOneSecond(t *testing.T) {
	ctx := context.Background()
	for _, ttl := range []time.Duration{0, -time.Hour} {
		m, clock := newFake(t)
		if err := m.Claim(ctx, "acme", "j", ttl); err != nil {
			t.Fatalf("ttl %v: claim: %v", ttl, err)
		}
		if reason.Of(m.Claim(ctx, "acme", "j", ttl)) != reason.Replayed {
			t.Fatalf("ttl %v: entry not stored", ttl)
		}
		clock.Advance(time.Second)
		if err := m.Claim(ctx, "acme", "j", ttl); err != nil {
			t.Fatalf("ttl %v: entry outlived 1s: %v", ttl, err)
		}
	}
}

func TestMemoryHugeTTLDoesNotOverflow(t *testing.T) {
	ctx := context.Background()
	m, _ := newFake(t)
	if err := m.Claim(ctx, "acme", "j", time.Duration(1<<63-1)); err != nil {
		t.Fatal(err)
	}
	if reason.Of(m.Claim(ctx, "acme", "j", time.Minute)) != reason.Replayed {
		t.Fatal("a huge ttl overflowed into an already-expired entry")
	}
}

func TestMemoryRevokeKeepsLaterUntil(t *testing.T) {
	ctx := context.Background()
	m, clock := newFake(t)
	s := replay.SessionRef{ID: "sid", Tenant: "acme", Subject: "jane", IssuedAt: clock.Now()}
	_ = m.Revoke(ctx, "sid", clock.Now().Add(time.Hour))
	_ = m.Revoke(ctx, "sid", clock.Now().Add(time.Minute))
	clock.Advance(2 * time.Minute)
	if !m.Revoked(s) {
		t.Fatal("a shorter second Revoke shortened the first")
	}
	if err := m.Revoke(ctx, "old", clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, n, _ := m.Sizes(); n != 1 {
		t.Fatalf("Revoke with until == now stored an entry: %d ids", n)
	}
}

func TestMemoryRevokeAllKeepsLaterUntil(t *testing.T) {
	ctx := context.Background()
	m, clock := newFake(t)
	early := replay.SessionRef{ID: "s", Tenant: "acme", Subject: "jane", IssuedAt: clock.Now().Add(-time.Minute)}
	_ = m.RevokeAll(ctx, "acme", "", clock.Now().Add(time.Hour))
	clock.Advance(time.Second)
	_ = m.RevokeAll(ctx, "acme", "", clock.Now().Add(time.Minute))
	clock.Advance(30 * time.Minute)
	if !m.Revoked(early) {
		t.Fatal("second RevokeAll shortened the first one's until")
	}
}

func TestMemoryCutoffBoundary(t *testing.T) {
	m, clock := newFake(t)
	at := clock.Now()
	_ = m.RevokeAll(context.Background(), "acme", "jane", at.Add(time.Hour))
	for _, c := range []struct {
		name string
		iat  time.Time
		want bool
	}{
		{"issued at the cutoff", at, true},
		{"issued 1ns after", at.Add(time.Nanosecond), false},
		{"unknown issue time", time.Time{}, true},
	} {
		if got := m.Revoked(replay.SessionRef{ID: "s", Tenant: "acme", Subject: "jane", IssuedAt: c.iat}); got != c.want {
			t.Errorf("%s: Revoked = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestMemorySweep(t *testing.T) {
	ctx := context.Background()
	m, clock := newFake(t)
	_ = m.Claim(ctx, "acme", "short", time.Nanosecond) // wall-clock expired at once
	_ = m.Claim(ctx, "acme", "long", time.Hour)
	_ = m.Revoke(ctx, "sid", clock.Now().Add(time.Hour))
	_ = m.Revoke(ctx, "gone", clock.Now().Add(time.Minute)) // reclaimed by the injected clock
	_ = m.RevokeAll(ctx, "acme", "", clock.Now().Add(time.Minute))
	_ = m.RevokeAll(ctx, "acme", "jane", clock.Now().Add(time.Hour))
	clock.Advance(2 * time.Minute)
	time.Sleep(time.Millisecond) // let the 1ns wall-clock expiry pass
	m.Sweep()
	used, sessions, cutoffs := m.Sizes()
	if used != 1 || sessions != 1 || cutoffs != 1 {
		t.Fatalf("after sweep: %d used, %d sessions, %d cutoffs; want 1, 1, 1", used, sessions, cutoffs)
	}
}

// Revoked runs on every request with a session, with no lock: with revoked
// ids and cutoffs stored it allocates nothing, and while other revocations
// are written and swept (the cutoff table replaced each time) it neither
// loses one nor invents one.
func TestMemoryRevokedWhileWritten(t *testing.T) {
	ctx := context.Background()
	m, clock := newFake(t)
	_ = m.Revoke(ctx, "sid", clock.Now().Add(time.Hour))
	_ = m.RevokeAll(ctx, "acme", "jane", clock.Now().Add(time.Hour))
	s := replay.SessionRef{ID: "other", Tenant: "acme", Subject: "joe", IssuedAt: clock.Now()}
	if n := testing.AllocsPerRun(100, func() { m.Revoked(s) }); n != 0 {
		t.Fatalf("Revoked allocates %v times per call", n)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = m.RevokeAll(ctx, "acme", "u"+strconv.Itoa(i%8), clock.Now().Add(time.Hour))
			_ = m.Revoke(ctx, "s"+strconv.Itoa(i%8), clock.Now().Add(time.Hour))
			m.Sweep()
		}
	})
	for range 1000 {
		if m.Revoked(s) {
			t.Error("an unrelated session counted as revoked")
			break
		}
		if !m.Revoked(replay.SessionRef{ID: "sid", Tenant: "acme", Subject: "joe"}) ||
			!m.Revoked(replay.SessionRef{ID: "x", Tenant: "acme", Subject: "jane", IssuedAt: clock.Now()}) {
			t.Error("a revocation was lost while others were written")
			break
		}
	}
	close(stop)
	wg.Wait()
}

func TestMemoryCloseStopsJanitor(t *testing.T) {
	m := replay.NewMemory(nil)
	select {
	case <-m.Done():
		t.Fatal("janitor ended before Close")
	default:
	}
	m.Close()
	// Close waits for the goroutine, so Done is already closed: no timing.
	select {
	case <-m.Done():
	default:
		t.Fatal("janitor goroutine still running after Close")
	}
	m.Close() // idempotent
	if err := m.Claim(context.Background(), "acme", "j", time.Minute); err != nil {
		t.Fatalf("claim after Close: %v", err)
	}
}

func TestMemoryJanitorSweeps(t *testing.T) {
	m := replay.NewMemoryEvery(nil, time.Millisecond)
	defer m.Close()
	_ = m.Claim(context.Background(), "acme", "j", time.Nanosecond)
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if used, _, _ := m.Sizes(); used == 0 {
			return
		}
		select {
		case <-deadline:
			t.Fatal("janitor never removed the expired entry")
		case <-tick.C:
		}
	}
}

func BenchmarkClaim(b *testing.B) {
	ctx := context.Background()
	m := replay.NewMemory(nil)
	defer m.Close()
	// Distinct jtis built up front, so the figure is Claim's own cost: the
	// path a fresh token takes.
	jtis := make([]string, b.N)
	for i := range jtis {
		jtis[i] = "jti-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := m.Claim(ctx, "acme", jtis[i], 2*time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRevoked(b *testing.B) {
	m := replay.NewMemory(nil)
	defer m.Close()
	_ = m.Revoke(context.Background(), "other", time.Now().Add(time.Hour))
	_ = m.RevokeAll(context.Background(), "globex", "", time.Now().Add(time.Hour))
	s := replay.SessionRef{ID: "sid", Tenant: "acme", Subject: "jane", IssuedAt: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if m.Revoked(s) {
			b.Fatal("revoked")
		}
	}
}

// TestMemoryClaimAllocatesNothing guards the replay table's layout: a Claim
// that allocated would put pointers back into the table the garbage
// collector then walks on every cycle (tail latency under exchange load).
func TestMemoryClaimAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	m, _ := newFake(t)
	jtis := make([]string, 1000)
	for i := range jtis {
		jtis[i] = "jti-" + strconv.Itoa(i)
	}
	i := 0
	allocs := testing.AllocsPerRun(len(jtis)-1, func() {
		if err := m.Claim(ctx, "acme", jtis[i], time.Minute); err != nil {
			t.Fatal(err)
		}
		i++
	})
	// Map growth allocates now and then; averaged over 1,000 claims it is
	// far below one per call.
	if allocs >= 0.5 {
		t.Fatalf("Claim: %.2f allocations per call, want none", allocs)
	}
}

// A clock stepped back (an NTP correction of a clock that ran ahead) must
// not un-revoke: a second RevokeAll of the same user keeps the first
// cutoff's later instant, as the Redis mirror and its script do.
func TestMemoryRevokeAllNeverMovesCutoffBack(t *testing.T) {
	m, clock := newFake(t)
	ctx := context.Background()
	s := replay.SessionRef{ID: "s1", Tenant: "acme", Subject: "jane", IssuedAt: clock.Now()}
	clock.Advance(10 * time.Second)
	if err := m.RevokeAll(ctx, "acme", "jane", clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !m.Revoked(s) {
		t.Fatal("not revoked by the first cutoff")
	}
	clock.Advance(-20 * time.Second)
	if err := m.RevokeAll(ctx, "acme", "jane", clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !m.Revoked(s) {
		t.Fatal("a second RevokeAll after the clock went back moved the cutoff back: a session the first covered is accepted again")
	}
}
