package replay

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// The periodic full reload (RedisConfig.ReloadEvery). The probes prove
// that the subscription hears what is published now, not that it heard
// everything: a subscription left on a demoted master hears the new
// master's announcements again once the old one replicates from it, and
// what was published on the new master in between never arrives. Reading
// every revocation key again now and then closes such a gap, and what the
// reload finds that no announcement brought is reported.

const (
	// gapGrace: how long the entries a reload added wait for their
	// announcements, which may have been queued on the subscription while
	// the reload ran (an instance signing a session out just then).
	gapGrace = 2 * healthInterval
	// maxGapKeys bounds the keys one reload tracks; past it, entries are
	// counted as missed without waiting for an announcement.
	maxGapKeys = 1024
)

// gapSet holds the keys of the entries one reload added to the mirror,
// until their announcements come or the grace ends.
type gapSet struct {
	mu    sync.Mutex // resync's node scans add concurrently
	keys  map[string]struct{}
	over  int       // added beyond maxGapKeys
	until time.Time // end of the grace
}

func newGapSet() *gapSet { return &gapSet{keys: make(map[string]struct{})} }

func (g *gapSet) add(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.keys) < maxGapKeys {
		g.keys[key] = struct{}{}
	} else {
		g.over++
	}
}

// delivered drops key: its announcement came, so it was only in flight.
func (g *gapSet) delivered(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.keys, key)
}

// missed is how many added entries no announcement brought.
func (g *gapSet) missed() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.keys) + g.over
}

// reloader schedules one subscription's periodic reloads.
type reloader struct {
	next time.Time
	gap  *gapSet // the last reload's additions, within their grace
}

// restart schedules the next reload one period after a full load.
func (rl *reloader) restart(r *Redis) {
	rl.next, rl.gap = time.Now().Add(r.reloadPeriod()), nil
}

// reloadPeriod is ReloadEvery less up to a tenth, so that instances
// started together do not scan Redis in step.
func (r *Redis) reloadPeriod() time.Duration {
	return r.reloadEvery - rand.N(r.reloadEvery/10+1) //nolint:gosec // jitter, not a secret
}

// reloadIfDue reports the missed entries of the last reload once its grace
// is over, then runs the next reload when it is due. It reports whether the
// mirror is fully loaded; on false, the caller retries as after any
// incomplete load (already reported here).
func (r *Redis) reloadIfDue(ctx context.Context, rl *reloader) bool {
	if rl.gap != nil && time.Now().After(rl.gap.until) {
		if n := rl.gap.missed(); n > 0 {
			r.report(Event{Kind: EventGapClosed, Entries: n})
		}
		rl.gap = nil
	}
	if rl.gap != nil || time.Now().Before(rl.next) {
		return true
	}
	gap := newGapSet()
	n, err := r.resync(ctx, gap)
	rl.next = time.Now().Add(r.reloadPeriod())
	if err != nil {
		r.resyncFailed(err, n, true)
		return false
	}
	gap.until = time.Now().Add(gapGrace)
	rl.gap = gap
	return true
}

// announced marks the entry of an announcement as delivered for the
// reload waiting on it.
func (rl *reloader) announced(r *Redis, e revEntry) {
	if rl.gap == nil {
		return
	}
	if e.SID != "" {
		rl.gap.delivered(r.sidKey(e.SID))
	} else {
		rl.gap.delivered(r.cutKey(e.Tenant, e.Subject))
	}
}
