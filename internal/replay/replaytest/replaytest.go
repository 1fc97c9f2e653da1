// Package replaytest is the conformance suite that every replay.Store and
// replay.Revocations implementation (memory, Redis) must pass, plus a fake
// clock. It is imported only by tests.
package replaytest

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/testsupport"
)

// Clock is the shared fake clock (testsupport.Clock), safe for concurrent
// use; Advance moves it.
type Clock = testsupport.Clock

// NewClock returns a Clock reading t.
func NewClock(t time.Time) *Clock { return testsupport.NewClock(t) }

// Harness builds a fresh, empty implementation for one subtest. Advance moves
// that implementation's notion of time forward (for memory: the fake clock;
// for Redis: it shifts key TTLs).
//
// The implementation's clock must start at about time.Now(): the suite dates
// sessions from time.Now() plus the total it has advanced, so that one suite
// serves both a fake clock and a server that keeps real time. Its margins
// (a minute before a cutoff, a second after) absorb the skew between them.
type Harness struct {
	New func(t *testing.T) (replay.Store, replay.Revocations, func(d time.Duration))
}

// env is one subtest's implementation and its view of time.
type env struct {
	store    replay.Store
	rev      replay.Revocations
	advance  func(time.Duration)
	advanced time.Duration
}

func (h Harness) env(t *testing.T) *env {
	t.Helper()
	s, r, adv := h.New(t)
	return &env{store: s, rev: r, advance: adv}
}

// now is the suite's estimate of the implementation's clock.
func (e *env) now() time.Time { return time.Now().Add(e.advanced) }

func (e *env) step(d time.Duration) {
	e.advance(d)
	e.advanced += d
}

func wantReason(t *testing.T, err error, want reason.Reason, what string) {
	t.Helper()
	if got := reason.Of(err); got != want {
		t.Fatalf("%s: got error %v (reason %q), want reason %q", what, err, got, want)
	}
}

// RunStore runs the Store conformance suite.
func RunStore(t *testing.T, h Harness) {
	ctx := context.Background()

	t.Run("FirstClaimOKSecondReplayed", func(t *testing.T) {
		e := h.env(t)
		if err := e.store.Claim(ctx, "acme", "jti-1", time.Minute); err != nil {
			t.Fatalf("first claim: %v", err)
		}
		err := e.store.Claim(ctx, "acme", "jti-1", time.Minute)
		wantReason(t, err, reason.Replayed, "second claim")
		if err := e.store.Claim(ctx, "acme", "jti-2", time.Minute); err != nil {
			t.Fatalf("other jti: %v", err)
		}
	})

	t.Run("TenantsAreIndependent", func(t *testing.T) {
		e := h.env(t)
		for _, tenant := range []string{"acme", "globex"} {
			if err := e.store.Claim(ctx, tenant, "shared-jti", time.Minute); err != nil {
				t.Fatalf("claim in %s: %v", tenant, err)
			}
		}
		wantReason(t, e.store.Claim(ctx, "globex", "shared-jti", time.Minute), reason.Replayed, "replay in globex")
		// Tenant and jti must not simply be concatenated: "ab"+"c" is not "a"+"bc".
		if err := e.store.Claim(ctx, "ab", "c", time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := e.store.Claim(ctx, "a", "bc", time.Minute); err != nil {
			t.Fatalf("tenant/jti boundary ignored: %v", err)
		}
	})

	t.Run("ExpiresAfterTTL", func(t *testing.T) {
		e := h.env(t)
		const ttl = 10 * time.Second
		if err := e.store.Claim(ctx, "acme", "jti-ttl", ttl); err != nil {
			t.Fatalf("claim: %v", err)
		}
		e.step(ttl - 500*time.Millisecond)
		wantReason(t, e.store.Claim(ctx, "acme", "jti-ttl", ttl), reason.Replayed, "just before ttl")
		e.step(500 * time.Millisecond)
		if err := e.store.Claim(ctx, "acme", "jti-ttl", ttl); err != nil {
			t.Fatalf("claim after ttl: %v", err)
		}
		wantReason(t, e.store.Claim(ctx, "acme", "jti-ttl", ttl), reason.Replayed, "re-claimed entry")
	})

	t.Run("ConcurrentClaimsExactlyOne", func(t *testing.T) {
		e := h.env(t)
		// Several rounds, as a check-then-set race shows up only sometimes.
		for round := range 20 {
			concurrentClaims(t, ctx, e.store, "race-"+strconv.Itoa(round))
		}
	})
}

// concurrentClaims fires 200 Claims of one key at once and expects exactly
// one success and 199 replays.
func concurrentClaims(t *testing.T, ctx context.Context, store replay.Store, jti string) {
	t.Helper()
	const n = 200
	var ok, replayed atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			<-start
			err := store.Claim(ctx, "acme", jti, time.Minute)
			switch reason.Of(err) {
			case "":
				if err != nil {
					errs <- err
					return
				}
				ok.Add(1)
			case reason.Replayed:
				replayed.Add(1)
			default:
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("%s: unexpected error: %v", jti, err)
	}
	if ok.Load() != 1 || replayed.Load() != n-1 {
		t.Fatalf("%s: got %d successes and %d replays, want 1 and %d", jti, ok.Load(), replayed.Load(), n-1)
	}
}

// RunRevocations runs the Revocations conformance suite.
func RunRevocations(t *testing.T, h Harness) {
	t.Run("RevokeOneSession", func(t *testing.T) { revokeOneSession(t, h) })
	t.Run("RevokeOutlivesCancelledContext", func(t *testing.T) { revokeCancelled(t, h) })

	// One cutoff for a tenant (subject "") or one subject in it: the same
	// four sessions, told apart by who the cutoff covers.
	for _, tc := range []struct {
		name, subject string
		names         [4]string // jane before, bob before, jane in globex, jane after
		want          [4]bool
	}{
		{"RevokeAllTenant", "",
			[4]string{"jane issued before", "bob issued before", "other tenant", "issued after the cutoff"},
			[4]bool{true, true, false, false}},
		{"RevokeAllSubject", "jane",
			[4]string{"jane issued before", "bob", "jane in another tenant", "jane issued after the cutoff"},
			[4]bool{true, false, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) { revokeAll(t, h, tc.subject, tc.names, tc.want) })
	}
}

// revokeAll: RevokeAll(acme, subject) refuses the sessions it covers issued
// before the cutoff, and only until its until.
func revokeAll(t *testing.T, h Harness, subject string, names [4]string, want [4]bool) {
	ctx := context.Background()
	e := h.env(t)
	before := e.now().Add(-time.Minute)
	jane := replay.SessionRef{ID: "s1", Tenant: "acme", Subject: "jane", IssuedAt: before}
	bob := replay.SessionRef{ID: "s2", Tenant: "acme", Subject: "bob", IssuedAt: before}
	janeElsewhere := replay.SessionRef{ID: "s3", Tenant: "globex", Subject: "jane", IssuedAt: before}
	if err := e.rev.RevokeAll(ctx, "acme", subject, e.now().Add(time.Hour)); err != nil {
		t.Fatalf("RevokeAll: %v", err)
	}
	e.step(time.Second)
	janeLater := replay.SessionRef{ID: "s4", Tenant: "acme", Subject: "jane", IssuedAt: e.now()}
	for i, s := range []replay.SessionRef{jane, bob, janeElsewhere, janeLater} {
		if got := e.rev.Revoked(s); got != want[i] {
			t.Errorf("%s: Revoked = %v, want %v", names[i], got, want[i])
		}
	}
	e.step(time.Hour)
	if e.rev.Revoked(jane) {
		t.Error("still revoked after until")
	}
}

// revokeCancelled: a revocation asked for by a request whose client has
// gone (its context cancelled) is still made, and reported made.
func revokeCancelled(t *testing.T, h Harness) {
	e := h.env(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := replay.SessionRef{ID: "sid-gone", Tenant: "acme", Subject: "jane", IssuedAt: e.now().Add(-time.Minute)}
	if err := e.rev.Revoke(ctx, s.ID, e.now().Add(time.Minute)); err != nil {
		t.Fatalf("Revoke with the caller gone: %v", err)
	}
	if err := e.rev.RevokeAll(ctx, "globex", "", e.now().Add(time.Minute)); err != nil {
		t.Fatalf("RevokeAll with the caller gone: %v", err)
	}
	if !e.rev.Revoked(s) || !e.rev.Revoked(replay.SessionRef{ID: "g1", Tenant: "globex", Subject: "bob", IssuedAt: e.now().Add(-time.Minute)}) {
		t.Fatal("not revoked")
	}
}

// revokeOneSession: a revoked session id is refused until its expiry, and
// only that id.
func revokeOneSession(t *testing.T, h Harness) {
	ctx := context.Background()
	e := h.env(t)
	iat := e.now().Add(-time.Minute)
	s := replay.SessionRef{ID: "sid-1", Tenant: "acme", Subject: "jane", IssuedAt: iat}
	other := replay.SessionRef{ID: "sid-2", Tenant: "acme", Subject: "jane", IssuedAt: iat}
	if e.rev.Revoked(s) {
		t.Fatal("revoked before Revoke")
	}
	if err := e.rev.Revoke(ctx, s.ID, e.now().Add(time.Minute)); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if !e.rev.Revoked(s) {
		t.Fatal("not revoked after Revoke")
	}
	if e.rev.Revoked(other) {
		t.Fatal("another session id of the same subject is revoked")
	}
	e.step(time.Minute + time.Second)
	if e.rev.Revoked(s) {
		t.Fatal("still revoked after until")
	}
}
