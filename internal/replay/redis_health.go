package replay

import (
	"sync"
	"time"
)

// recoverQuiet is how long request-path commands must succeed without a
// single failure before an outage is declared over. During a partial
// outage (one Cluster node down, a failover under way) successes and
// failures interleave; without it, each alternation would be an outage and
// a recovery in the log. One outage is one pair of lines.
const recoverQuiet = 2 * time.Second

// health is the outage state of the request path, debounced: down at the
// first failure, up again once there was a success and no failure for
// recoverQuiet. It reports the outage's start and end once each.
type health struct {
	report func(Event)
	quiet  time.Duration
	now    func() time.Time // wall clock; outages are real time

	mu       sync.Mutex
	down     bool
	lastFail time.Time
	okAfter  bool // a success since lastFail
	timer    *time.Timer
	closed   bool
}

func newHealth(report func(Event)) *health {
	return &health{report: report, quiet: recoverQuiet, now: time.Now}
}

// failed notes a failure; the first of an outage is reported with its cause.
func (h *health) failed(err error) {
	h.mu.Lock()
	h.lastFail, h.okAfter = h.now(), false
	start := !h.down
	h.down = true
	h.mu.Unlock()
	if start {
		h.report(Event{Kind: EventUnavailable, Err: err})
	}
}

// succeeded notes a success. During an outage it ends the outage when the
// last failure is recoverQuiet old, or arms a timer to check again then.
func (h *health) succeeded() {
	h.mu.Lock()
	if !h.down {
		h.mu.Unlock()
		return
	}
	h.okAfter = true
	h.mu.Unlock()
	h.check()
}

// check ends the outage if it is over, else waits for the quiet interval.
func (h *health) check() {
	h.mu.Lock()
	if !h.down || !h.okAfter || h.closed {
		h.mu.Unlock()
		return
	}
	left := h.quiet - h.now().Sub(h.lastFail)
	if left > 0 {
		if h.timer == nil {
			h.timer = time.AfterFunc(left, func() {
				h.mu.Lock()
				h.timer = nil
				h.mu.Unlock()
				h.check()
			})
		}
		h.mu.Unlock()
		return
	}
	h.down = false
	h.mu.Unlock()
	h.report(Event{Kind: EventRecovered})
}

// close stops a pending check.
func (h *health) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.timer != nil {
		h.timer.Stop()
	}
}
