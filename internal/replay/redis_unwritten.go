package replay

import (
	"context"
	"time"
)

// A revocation Redis did not take (down, unreachable from this instance,
// a lost reply) holds on this instance at once, but every other instance
// learns of it only from Redis. So it is kept until a write of it is
// stored: at every (re)subscribe, before the mirror reloads, and while any
// wait, every healthInterval, for at most unwrittenBudget a pass (the
// subscription waits meanwhile). Before, it was kept only for
// rewriteWindow like the recent ones, and an outage longer than that lost
// it: a stolen copy of a signed-out cookie went on working on every other
// instance, and on instances started later.
//
// maxUnwritten bounds what an outage can pile up (an entry is about 200
// bytes); past it the newest is dropped and EventUnwrittenDropped says so.
const (
	maxUnwritten    = 100000
	unwrittenBudget = 2 * time.Second
)

// keepUnwritten records a revocation whose write was not stored, merged
// with one of the same key as revokeScript merges them: the later expiry
// and the later cutoff instant.
func (r *Redis) keepUnwritten(key string, e revEntry, until time.Time) {
	r.unwrittenMu.Lock()
	defer r.unwrittenMu.Unlock()
	if old, ok := r.unwritten[key]; ok {
		if old.until.After(until) {
			until = old.until
		}
		e.At = max(e.At, old.e.At)
	} else if len(r.unwritten) >= maxUnwritten {
		r.unwrittenDropped++
		return
	}
	if r.unwritten == nil {
		r.unwritten = map[string]recentRevocation{}
	}
	r.unwritten[key] = recentRevocation{key: key, e: e, until: until}
}

// stored forgets an unwritten revocation that a stored write of key now
// covers (as late an expiry and cutoff instant, or later).
func (r *Redis) stored(key string, e revEntry, until time.Time) {
	r.unwrittenMu.Lock()
	defer r.unwrittenMu.Unlock()
	if old, ok := r.unwritten[key]; ok && !old.until.After(until) && old.e.At <= e.At {
		delete(r.unwritten, key)
	}
}

// writeUnwritten writes the revocations Redis did not take, and returns
// how many it stored; it stops at the first that Redis refuses, the rest
// wait for the next try. Expired ones are dropped unwritten.
func (r *Redis) writeUnwritten(ctx context.Context) int {
	r.unwrittenMu.Lock()
	todo := make([]recentRevocation, 0, len(r.unwritten))
	for _, u := range r.unwritten {
		todo = append(todo, u)
	}
	dropped := r.unwrittenDropped
	r.unwrittenDropped = 0
	r.unwrittenMu.Unlock()
	if dropped > 0 {
		r.report(Event{Kind: EventUnwrittenDropped, Entries: dropped})
	}
	n, stop := 0, time.Now().Add(unwrittenBudget)
	for _, u := range todo {
		if time.Now().After(stop) {
			break // the rest at the next pass
		}
		if !u.until.After(r.now()) {
			r.stored(u.key, u.e, u.until)
			continue
		}
		if _, refused := r.writeBack(ctx, revokeScript, u.key, u.e, u.until); refused {
			break
		}
		r.stored(u.key, u.e, u.until)
		n++
	}
	return n
}

// hasUnwritten reports whether revocations wait to be written.
func (r *Redis) hasUnwritten() bool {
	r.unwrittenMu.Lock()
	defer r.unwrittenMu.Unlock()
	return len(r.unwritten) > 0 || r.unwrittenDropped > 0
}

// writeUnwrittenReport is writeUnwritten, reporting what it stored.
func (r *Redis) writeUnwrittenReport(ctx context.Context) {
	if n := r.writeUnwritten(ctx); n > 0 {
		r.report(Event{Kind: EventRewritten, Entries: n})
	}
}

// adoptPending takes over what seed (the store this one replaces on a
// config reload) had not written yet and its recent revocations, so that
// a reload loses neither.
func (r *Redis) adoptPending(seed *Redis) {
	seed.unwrittenMu.Lock()
	pending := make([]recentRevocation, 0, len(seed.unwritten))
	for _, u := range seed.unwritten {
		pending = append(pending, u)
	}
	dropped := seed.unwrittenDropped
	seed.unwrittenMu.Unlock()
	for _, u := range pending {
		r.keepUnwritten(u.key, u.e, u.until)
	}
	r.unwrittenMu.Lock()
	r.unwrittenDropped += dropped
	r.unwrittenMu.Unlock()
	seed.recentMu.Lock()
	recent := append([]recentRevocation(nil), seed.recent...)
	seed.recentMu.Unlock()
	r.recentMu.Lock()
	r.recent = append(recent, r.recent...)
	r.recentMu.Unlock()
}
