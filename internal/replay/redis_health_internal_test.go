package replay

import (
	"errors"
	"testing"
	"time"
)

// Item 5: successes and failures interleaved (a partial outage) are one
// outage; it ends once successes ran recoverQuiet without a failure.
func TestHealthDebounce(t *testing.T) {
	var kinds []EventKind
	h := newHealth(func(e Event) { kinds = append(kinds, e.Kind) })
	now := time.Unix(1_700_000_000, 0)
	h.now = func() time.Time { return now }
	h.quiet = time.Hour // the timer never fires in this test; check is called by hand
	h.succeeded()
	if len(kinds) != 0 {
		t.Fatalf("events while healthy: %v", kinds)
	}
	for range 10 {
		h.failed(errors.New("node down"))
		now = now.Add(100 * time.Millisecond)
		h.succeeded()
		now = now.Add(100 * time.Millisecond)
	}
	if len(kinds) != 1 || kinds[0] != EventUnavailable || !h.down {
		t.Fatalf("flapping: events %v, want one outage", kinds)
	}
	now = now.Add(time.Hour)
	h.check()
	if len(kinds) != 2 || kinds[1] != EventRecovered || h.down {
		t.Fatalf("after a quiet interval: events %v, want the recovery", kinds)
	}
	// A failure after the last success: no recovery until a success.
	h.failed(errors.New("again"))
	now = now.Add(2 * time.Hour)
	h.check()
	if len(kinds) != 3 || !h.down {
		t.Fatalf("recovered without a success: %v", kinds)
	}
	h.succeeded()
	if len(kinds) != 4 || kinds[3] != EventRecovered {
		t.Fatalf("events %v", kinds)
	}
	h.close()
}

// The timer ends an outage with no further traffic.
func TestHealthTimerEndsOutage(t *testing.T) {
	got := make(chan EventKind, 4)
	h := newHealth(func(e Event) { got <- e.Kind })
	h.quiet = 50 * time.Millisecond
	h.failed(errors.New("x"))
	h.succeeded()
	if k := <-got; k != EventUnavailable {
		t.Fatalf("got %v", k)
	}
	select {
	case k := <-got:
		if k != EventRecovered {
			t.Fatalf("got %v", k)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the outage did not end by itself")
	}
	h.close()
}
