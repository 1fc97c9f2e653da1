package replay

import (
	"sync"
	"time"
)

// mirror is a process-local copy of the revocations held in Redis, so that
// Revoked stays a map lookup on the per-request path.
//
// It does not reuse Memory: Memory.RevokeAll dates a cutoff from its own
// clock at the time of the call, while a mirror must keep the instant chosen
// by the instance that revoked. Dating it from the arrival of a message (or
// from a resync after a reconnect, minutes later) would also revoke every
// session issued in between.
//
// Entries only ever grow (later until, later cutoff) until they expire: a
// resync merges into the mirror rather than replacing it, so a revocation
// this process knows of is never forgotten early, even if Redis lost it.
type mirror struct {
	now func() time.Time

	mu       sync.RWMutex
	sessions map[string]int64 // session id -> revoked until (Unix nanos)
	cutoffs  cutoffTable
}

func newMirror(now func() time.Time) *mirror {
	return &mirror{now: now, sessions: make(map[string]int64), cutoffs: make(cutoffTable)}
}

// merge adds every live entry of o (another mirror of the same Redis and
// prefix), keeping the later of each as revokeSession and cut do.
func (m *mirror) merge(o *mirror) {
	now := m.now().UnixNano()
	o.mu.RLock()
	sessions := make(map[string]int64, len(o.sessions))
	for sid, until := range o.sessions {
		if until > now {
			sessions[sid] = until
		}
	}
	cutoffs := make(cutoffTable, len(o.cutoffs))
	for k, c := range o.cutoffs {
		if c.until > now {
			cutoffs[k] = c
		}
	}
	o.mu.RUnlock()
	for sid, until := range sessions {
		m.revokeSession(sid, until)
	}
	for k, c := range cutoffs {
		m.cut(k.tenant, k.subject, c.at, c.until)
	}
}

// revokeSession records sid as revoked until the Unix-nano instant until,
// and reports whether sid was not revoked here before.
func (m *mirror) revokeSession(sid string, until int64) (added bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.sessions[sid]
	if !ok || old < until {
		m.sessions[sid] = until
	}
	return !ok || old <= m.now().UnixNano()
}

// cut records a RevokeAll cutoff: sessions of (tenant, subject) issued at or
// before at are revoked until the Unix-nano instant until. Merging keeps the
// later of each, which covers everything either version covered. It reports
// whether this covers sessions the mirror did not cover before (a new
// cutoff, or a later instant).
func (m *mirror) cut(tenant, subject string, at time.Time, until int64) (added bool) {
	k := cutoffKey{tenant, subject}
	m.mu.Lock()
	defer m.mu.Unlock()
	added = true
	if old, ok := m.cutoffs[k]; ok && old.until > m.now().UnixNano() {
		added = at.After(old.at)
		if old.at.After(at) {
			at = old.at
		}
		until = max(until, old.until)
	}
	m.cutoffs[k] = cutoff{at: at, until: until}
	return added
}

// revoked is Revocations.Revoked: a few map reads, no I/O, no allocation.
func (m *mirror) revoked(s SessionRef) bool {
	now := m.now().UnixNano()
	m.mu.RLock()
	defer m.mu.RUnlock()
	if s.ID != "" {
		if until, ok := m.sessions[s.ID]; ok && until > now {
			return true
		}
	}
	return m.cutoffs.covers(s, now)
}

// sweep drops expired entries; expiry itself is decided on every read.
func (m *mirror) sweep() {
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, until := range m.sessions {
		if until <= now {
			delete(m.sessions, k)
		}
	}
	m.cutoffs.dropExpired(now)
}
