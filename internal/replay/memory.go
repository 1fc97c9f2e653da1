package replay

import (
	"context"
	"maps"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// janitorInterval is how often expired entries are swept. Sweeping only
// reclaims memory: expiry itself is decided on every read by the clock.
const janitorInterval = time.Minute

// maxTTL caps lifetimes so that expiries stay within the range of
// time.UnixNano (year 2262); an overflow would turn "used for ever" into
// "already expired", which would reopen a replay window.
const maxTTL = 100 * 365 * 24 * time.Hour

// usedShards is the number of shards of the replay table, each with its
// own lock and map. A power of two, so the shard is a mask of the key.
const usedShards = 256

// Memory is an in-process Store and Revocations for a single gateway
// instance. It is safe for concurrent use. Expiry follows the clock given to
// NewMemory, so tests can move time without sleeping.
//
// Each entry's value is its logical expiry as int64 Unix nanoseconds: an
// entry whose expiry is at or before now() counts as absent.
//
// Revoked reads take no lock: it runs on every request with a session, on
// every core, and a reader count in a shared lock would bounce between the
// cores. Revoked session ids are a sync.Map; the RevokeAll cutoffs, few
// and rarely written, are a table replaced whole on each change.
type Memory struct {
	now func() time.Time

	used     *usedTable
	sessions sync.Map   // session id -> revoked until (int64 Unix nanos)
	revokeMu sync.Mutex // Revoke's read-modify-write (keep the later until)

	cutMu   sync.Mutex                  // serializes the writers of cutoffs
	cutoffs atomic.Pointer[cutoffTable] // RevokeAll: never changed once stored

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// cutoffKey is a struct rather than a joined string so that Revoked, on the
// per-request path, looks it up without allocating.
type cutoffKey struct{ tenant, subject string }

type cutoff struct {
	at    time.Time // sessions issued at or before this are revoked
	until int64     // Unix nanos after which the cutoff is forgotten
}

// cutoffTable holds RevokeAll cutoffs by (tenant, subject), for Memory and
// the Redis mirror. It has no lock of its own: the mirror guards it with its
// lock, and Memory replaces it instead of changing it.
type cutoffTable map[cutoffKey]cutoff

// covers reports whether a live cutoff revokes s: one for its subject, or
// one for its whole tenant. A zero IssuedAt is covered by any cutoff that
// applies, the safe reading of an unknown issue time. No allocation.
func (t cutoffTable) covers(s SessionRef, now int64) bool {
	if len(t) == 0 {
		return false
	}
	return t.cutBy(cutoffKey{s.Tenant, s.Subject}, s.IssuedAt, now) ||
		(s.Subject != "" && t.cutBy(cutoffKey{s.Tenant, ""}, s.IssuedAt, now))
}

// cutBy reports whether the live cutoff k covers a session issued at iat.
func (t cutoffTable) cutBy(k cutoffKey, iat time.Time, now int64) bool {
	c, ok := t[k]
	return ok && c.until > now && !iat.After(c.at)
}

// dropExpired deletes the cutoffs whose until is at or before now and
// reports whether it deleted any.
func (t cutoffTable) dropExpired(now int64) bool {
	dropped := false
	for k, c := range t {
		if c.until <= now {
			delete(t, k)
			dropped = true
		}
	}
	return dropped
}

var (
	_ Store       = (*Memory)(nil)
	_ Revocations = (*Memory)(nil)
)

// NewMemory returns an empty Memory using now as its clock (time.Now when
// nil) and starts its janitor goroutine; call Close to stop it.
func NewMemory(now func() time.Time) *Memory {
	m := newMemory(now)
	go m.janitor(janitorInterval)
	return m
}

func newMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	m := &Memory{
		now:  now,
		used: newUsedTable(),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	m.cutoffs.Store(&cutoffTable{})
	return m
}

// Close stops the janitor goroutine and waits for it to end. It is
// idempotent. The Memory stays usable afterwards, without sweeping.
func (m *Memory) Close() {
	m.closeOnce.Do(func() { close(m.stop) })
	<-m.done
}

func (m *Memory) janitor(every time.Duration) {
	defer close(m.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.sweep()
		}
	}
}

// sweep reclaims replay entries, revoked session ids and cutoffs expired
// by the injected clock.
func (m *Memory) sweep() {
	now := m.now().UnixNano()
	m.used.sweep(now)
	m.sessions.Range(func(id, until any) bool {
		if until.(int64) <= now {
			m.sessions.CompareAndDelete(id, until) // a newer Revoke wins
		}
		return true
	})
	m.updateCutoffs(func(t cutoffTable) bool { return t.dropExpired(now) })
}

// updateCutoffs replaces the cutoff table with a copy that change has
// changed; change reports whether it changed anything.
func (m *Memory) updateCutoffs(change func(cutoffTable) bool) {
	m.cutMu.Lock()
	defer m.cutMu.Unlock()
	next := maps.Clone(*m.cutoffs.Load())
	if change(next) {
		m.cutoffs.Store(&next)
	}
}

// Claim implements Store. A ttl <= 0 is treated as one second so that an
// entry is never stored without expiry nor already expired. It never
// returns reason.StoreUnavailable.
func (m *Memory) Claim(_ context.Context, tenant, jti string, ttl time.Duration) error {
	if ttl <= 0 {
		ttl = time.Second
	}
	ttl = min(ttl, maxTTL)
	return m.used.claim(tenant, jti, m.now, ttl)
}

// Revoke implements Revocations. An until at or before now is a no-op: the
// session has expired anyway.
func (m *Memory) Revoke(_ context.Context, sessionID string, until time.Time) error {
	m.revokeMu.Lock()
	defer m.revokeMu.Unlock()
	now := m.now()
	d := min(until.Sub(now), maxTTL)
	if d <= 0 {
		return nil
	}
	exp := addNanos(now.UnixNano(), d)
	// Revoking twice keeps the later expiry, so a second, shorter revocation
	// cannot shorten the first.
	if v, ok := m.sessions.Load(sessionID); ok && v.(int64) >= exp {
		return nil
	}
	m.sessions.Store(sessionID, exp)
	return nil
}

// RevokeAll implements Revocations. The cutoff is now(); a later call for the
// same (tenant, subject) keeps the later cutoff and the later until, so it
// covers everything the earlier one did, also after the clock went back.
func (m *Memory) RevokeAll(_ context.Context, tenant, subject string, until time.Time) error {
	now := m.now()
	d := min(until.Sub(now), maxTTL)
	if d <= 0 {
		return nil
	}
	exp := addNanos(now.UnixNano(), d)
	k := cutoffKey{tenant, subject}
	m.updateCutoffs(func(t cutoffTable) bool {
		at := now
		if old, ok := t[k]; ok && old.until > now.UnixNano() {
			// Never back: after the clock was stepped back (an NTP
			// correction), an earlier instant would let sessions the live
			// cutoff covers through again. The mirror keeps the later
			// one too.
			exp = max(exp, old.until)
			if old.at.After(at) {
				at = old.at
			}
		}
		t[k] = cutoff{at: at, until: exp}
		return true
	})
	return nil
}

// Revoked implements Revocations: two or three local map reads, no I/O and
// no allocation. A session with a zero IssuedAt is revoked by any cutoff of
// its tenant, which is the safe reading of an unknown issue time.
func (m *Memory) Revoked(s SessionRef) bool {
	// The clock is read only when something could cover s: nearly every
	// request asks about a session nobody revoked.
	if s.ID != "" {
		if v, ok := m.sessions.Load(s.ID); ok && v.(int64) > m.now().UnixNano() {
			return true
		}
	}
	t := m.cutoffs.Load()
	return len(*t) > 0 && t.covers(s, m.now().UnixNano())
}

// addNanos returns now+d, saturating instead of overflowing.
func addNanos(now int64, d time.Duration) int64 {
	if now > 0 && int64(d) > math.MaxInt64-now {
		return math.MaxInt64
	}
	return now + int64(d)
}
