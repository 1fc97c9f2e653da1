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
	// announcements, which may have been on their way while it ran.
	gapGrace = 2 * healthInterval
	// maxGapKeys bounds the keys one reload tracks, and the announcements
	// it remembers; past it, entries are neither tracked nor counted, so
	// a burst of sign-outs cannot be mistaken for a gap.
	maxGapKeys = 10000
)

// gapSet holds the keys of the entries one reload added to the mirror,
// less those whose announcements came (before or after the reload read
// them), until the grace ends.
type gapSet struct {
	mu        sync.Mutex // the reload's node scans add while announcements arrive
	added     map[string]struct{}
	announced map[string]struct{}
	until     time.Time // end of the grace; zero while the reload runs
}

func newGapSet() *gapSet {
	return &gapSet{added: make(map[string]struct{}), announced: make(map[string]struct{})}
}

func (g *gapSet) add(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.announced[key]; !ok && len(g.added) < maxGapKeys {
		g.added[key] = struct{}{}
	}
}

// delivered records that key's announcement came, so it was only in
// flight: also when it comes before the reload reads the key.
func (g *gapSet) delivered(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.added, key)
	if len(g.announced) < maxGapKeys {
		g.announced[key] = struct{}{}
	}
}

// missed is how many added entries no announcement brought.
func (g *gapSet) missed() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.added)
}

// reloader schedules one subscription's periodic reloads. A reload runs
// in a goroutine of its own: on a large database its SCAN takes a while,
// and announcements must keep coming meanwhile.
type reloader struct {
	next    time.Time
	running chan reloaded // the reload in progress, until it ends
	gap     *gapSet       // its additions, until their grace ends
}

// reloaded is how a reload ended: the entries it read, and its error.
type reloaded struct {
	n   int64
	err error
}

// restart schedules the next reload one period after a full load.
func (rl *reloader) restart(r *Redis) {
	rl.next = time.Now().Add(r.reloadPeriod())
}

// reloadPeriod is ReloadEvery less up to a tenth, so that instances
// started together do not scan Redis in step.
func (r *Redis) reloadPeriod() time.Duration {
	return r.reloadEvery - rand.N(r.reloadEvery/10+1) //nolint:gosec // jitter, not a secret
}

// reloadStep runs from the subscription's loop: it collects a finished
// reload, reports what no announcement brought once the grace is over, and
// starts the next reload when due (its goroutine ends with ctx). It
// reports false when a reload failed (reported here): the caller retries
// as after any incomplete load.
func (r *Redis) reloadStep(ctx context.Context, rl *reloader) bool {
	ok := true
	select {
	case res := <-rl.running: // nil channel: no reload running
		rl.running = nil
		rl.next = time.Now().Add(r.reloadPeriod())
		// What it found counts also when it failed partway.
		rl.gap.until = time.Now().Add(gapGrace)
		if res.err != nil && ctx.Err() == nil {
			r.resyncFailed(res.err, res.n, true)
			ok = false
		}
	default:
	}
	if rl.running != nil {
		return ok
	}
	if rl.gap != nil && time.Now().After(rl.gap.until) {
		if n := rl.gap.missed(); n > 0 {
			r.report(Event{Kind: EventGapClosed, Entries: n})
		}
		rl.gap = nil
	}
	if rl.gap == nil && time.Now().After(rl.next) {
		gap, done := newGapSet(), make(chan reloaded, 1)
		rl.gap, rl.running = gap, done
		go func() {
			n, err := r.resync(ctx, gap)
			done <- reloaded{n, err}
		}()
	}
	return ok
}

// wait waits for a reload in progress (its context ended first).
func (rl *reloader) wait() {
	if rl.running != nil {
		<-rl.running
		rl.running = nil
	}
}

// announced marks the entry of an announcement as delivered for the
// reload that may have added it.
func (rl *reloader) announced(r *Redis, e revEntry) {
	if rl.gap == nil {
		return
	}
	rl.gap.delivered(r.entryKey(e))
}
