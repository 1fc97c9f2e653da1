package jwks

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/testsupport"
)

// arrivals makes s report each request on the returned channel as it
// arrives, before it is answered (or blocked).
func arrivals(s *idp) <-chan struct{} {
	ch := make(chan struct{}, 16)
	inner := s.Config.Handler
	s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch <- struct{}{}
		inner.ServeHTTP(w, r)
	})
	return ch
}

// within fails the test unless f returns before the deadline; the deadline
// only catches a hang, nothing waits for it.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not return while the IdP hung", what)
	}
}

// An unknown-kid Lookup waits for its refetch only as long as its own ctx:
// an already cancelled one, or one cancelled mid-fetch, returns at once
// with the kid unknown while the IdP still hangs. The fetch itself goes
// on: a caller that did not give up gets the new key from that same fetch.
func TestLookupBoundedByContext(t *testing.T) {
	clk := testsupport.NewClock(t0)
	k1, _ := ecJWK(t, "k1")
	k2, _ := ecJWK(t, "k2")
	s := newIdP(t, k1)
	seen := arrivals(s)
	c, errs := newCache(t, s, clk)
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-seen
	block := make(chan struct{})
	s.set(func() { s.block = block })
	s.setKeys(k1, k2)
	clk.Advance(MinInterval)

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	within(t, "Lookup with a cancelled ctx", func() {
		if _, ok := c.Lookup(cancelled, "k2"); ok {
			t.Error("k2 found before the IdP answered")
		}
	})
	<-seen // that Lookup did start the refetch; the IdP holds it

	// A second caller cancelled while it waits on the same fetch.
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan bool)
	go func() { _, ok := c.Lookup(ctx, "k2"); got <- ok }()
	cancel()
	within(t, "Lookup cancelled mid-fetch", func() {
		if <-got {
			t.Error("k2 found before the IdP answered")
		}
	})

	// Start is bounded the same way.
	within(t, "Start with a cancelled ctx", func() {
		if err := c.Start(cancelled); !errors.Is(err, context.Canceled) {
			t.Errorf("Start = %v, want context.Canceled", err)
		}
	})

	// The fetch was not cancelled with its callers: once the IdP answers,
	// a patient caller finds k2, and nothing was fetched twice.
	found := make(chan bool)
	go func() { _, ok := c.Lookup(t.Context(), "k2"); found <- ok }()
	close(block)
	if !<-found {
		t.Fatal("k2 not found once the IdP answered")
	}
	if n := s.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2 (start, one refetch)", n)
	}
	if len(*errs) != 0 {
		t.Fatalf("reported %v; a caller giving up is no fetch failure", *errs)
	}
}

// Close cancels a running fetch without reporting it as an outage, and no
// fetch starts after it (not on a due refresh, an unknown kid or Start);
// the keys already fetched stay readable.
func TestCloseStopsFetching(t *testing.T) {
	clk := testsupport.NewClock(t0)
	k1, _ := ecJWK(t, "k1")
	s := newIdP(t, k1)
	seen := arrivals(s)
	c, errs := newCache(t, s, clk)
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-seen
	s.set(func() { s.block = make(chan struct{}) }) // never answers
	clk.Advance(11 * time.Minute)
	c.Keys() // due: a background refresh starts and hangs
	<-seen
	c.Close()
	within(t, "the refresh Close cancelled", c.settle)
	if len(*errs) != 0 {
		t.Fatalf("reported %v; a fetch Close cancelled is no outage", *errs)
	}

	clk.Advance(time.Hour)
	if got := kids(c.Keys()); len(got) != 1 || got[0] != "k1/ES256" {
		t.Fatalf("keys after Close = %v, want k1 still readable", got)
	}
	if _, ok := c.Lookup(t.Context(), "k2"); ok {
		t.Fatal("unknown kid found after Close")
	}
	if k, ok := c.Lookup(t.Context(), "k1"); !ok || k.Alg != tenant.ES256 {
		t.Fatal("known kid lost after Close")
	}
	if err := c.Start(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
	c.Close() // again: a no-op
	if n := c.Fetches(); n != 2 || s.fetches.Load() != 2 {
		t.Fatalf("fetches = %d (IdP saw %d), want 2: none after Close", n, s.fetches.Load())
	}
}
