package replay

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// revokeScript writes a revocation key keeping the later expiry (a second,
// shorter revocation must not shorten the first) and, for a cutoff, the
// later instant (ARGV[5], Unix nanos: a cutoff written again after a
// failover must not move back a newer one), and announces what it kept in
// the same round trip, so a write is never left unannounced by a lost
// reply. The announcement is "<ttl ms> <origin> <value>". Nanosecond
// instants are compared as decimal strings: Lua numbers are doubles.
var revokeScript = redis.NewScript(`
local ttl = tonumber(ARGV[2])
local left = redis.call('PTTL', KEYS[1])
if left > ttl then ttl = left end
local value = ARGV[1]
local at = ARGV[5]
local old = at ~= '' and redis.call('GET', KEYS[1])
local oldAt = old and string.match(old, '"at":(%d+)')
if oldAt and (#oldAt > #at or (#oldAt == #at and oldAt > at)) then value = old end
redis.call('SET', KEYS[1], value, 'PX', ttl)
redis.call('PUBLISH', ARGV[3], string.format('%d', ttl) .. ' ' .. ARGV[4] .. ' ' .. value)
return ttl
`)

// revEntry is the value of a revocation key and the body of its
// announcement: a session id, or a cutoff for a tenant (and subject).
type revEntry struct {
	SID     string `json:"sid,omitempty"`
	Tenant  string `json:"tenant,omitempty"`
	Subject string `json:"sub,omitempty"`
	At      int64  `json:"at,omitempty"` // cutoff instant, Unix nanos
}

func (e revEntry) valid() bool { return e.SID != "" || e.Tenant != "" }

// Revoke implements Revocations: the session id is written with its
// remaining lifetime and announced to every instance. An until at or before
// now is a no-op.
func (r *Redis) Revoke(ctx context.Context, sessionID string, until time.Time) error {
	d := until.Sub(r.now())
	if d <= 0 {
		return nil
	}
	return r.revoke(ctx, r.sidKey(sessionID), revEntry{SID: sessionID}, until)
}

// RevokeAll implements Revocations: the cutoff (now) is written under
// <prefix>rev:cut:<tenant>:<subject>, kept until the time given, and announced.
func (r *Redis) RevokeAll(ctx context.Context, tenant, subject string, until time.Time) error {
	now := r.now()
	if until.Sub(now) <= 0 {
		return nil
	}
	e := revEntry{Tenant: tenant, Subject: subject, At: now.UnixNano()}
	return r.revoke(ctx, r.cutKey(tenant, subject), e, until)
}

func (r *Redis) revoke(ctx context.Context, key string, e revEntry, until time.Time) error {
	// Not cancelled with the caller's request (see Revocations): applied
	// only here, the revocation would miss every other instance.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	// Applied here first: a periodic reload must never find the key in
	// Redis before this instance's own mirror has it (that would be
	// reported as a lost announcement, EventGapClosed).
	if d := ttlMillis(until.Sub(r.now())); d > 0 {
		r.apply(e, d)
	}
	ttl, err := r.writeRevocation(ctx, key, e, until)
	if ttl <= 0 && err != nil {
		// Not known to be stored (a lost reply, Redis down): applied here
		// all the same. A write whose reply was lost may have reached
		// every other instance, and this one drops its own announcement;
		// a revocation only widens what is refused, and the caller
		// answers 503 and may retry. Written again until it is stored.
		ttl = ttlMillis(until.Sub(r.now()))
		r.keepUnwritten(key, e, until)
	} else {
		r.stored(key, e, until)
	}
	if ttl > 0 {
		// Applied here at once: this instance does not wait for its own
		// echo (and ignores it: applied later, it would date the expiry
		// afresh). Also when the replicas did not acknowledge: the master
		// has it, and the caller answers 503 and may retry.
		r.apply(e, ttl)
		r.remember(key, e, until)
	}
	if err != nil {
		what := "revoking a session"
		if e.SID == "" {
			what = "revoking the sessions of tenant " + strconv.Quote(e.Tenant)
		}
		return r.fail(ctx, err, "%s", what)
	}
	r.health.succeeded()
	return nil
}

// writeRevocation runs revokeScript for e (expiring at until) and returns
// the expiry it kept, in milliseconds (0 when nothing was written).
func (r *Redis) writeRevocation(ctx context.Context, key string, e revEntry, until time.Time) (int64, error) {
	return r.writeRevocationWith(ctx, revokeScript, key, e, until)
}

// writeRevocationWith is writeRevocation running script (revokeScript's
// arguments and reply).
func (r *Redis) writeRevocationWith(ctx context.Context, script *redis.Script, key string, e revEntry, until time.Time) (int64, error) {
	value, err := json.Marshal(e)
	if err != nil {
		return 0, err
	}
	at := ""
	if e.SID == "" {
		at = strconv.FormatInt(e.At, 10)
	}
	ttl, err := r.durable(ctx, key, script, string(value), ttlMillis(until.Sub(r.now())), r.channel, r.origin, at)
	if err != nil && !errors.Is(err, errNotDurable) {
		ttl = 0
	}
	return ttl, err
}

// Revoked implements Revocations from the local mirror: no I/O.
func (r *Redis) Revoked(s SessionRef) bool { return r.mirror.revoked(s) }

// apply records e in the mirror, expiring ttlMillis from now, and reports
// whether that revokes sessions the mirror did not revoke before.
func (r *Redis) apply(e revEntry, ttlMillis int64) (added bool) {
	until := addNanos(r.now().UnixNano(), time.Duration(ttlMillis)*time.Millisecond)
	if e.SID != "" {
		return r.mirror.revokeSession(e.SID, until)
	}
	return r.mirror.cut(e.Tenant, e.Subject, time.Unix(0, e.At), until)
}

// Revocations written by this instance are kept for rewriteWindow and
// written again after the master changed: an asynchronous replica promoted
// by a failover may lack a write the old master acknowledged, and the old
// master, demoted, drops it. The window covers the time the old master
// keeps accepting writes during a switch (about a second) plus the time
// this instance takes to notice the switch (at most two health intervals).
const (
	rewriteWindow = 15 * time.Second
	maxRecent     = 10000
)

type recentRevocation struct {
	key     string
	e       revEntry
	until   time.Time // expiry by r.now
	written time.Time // wall clock
}

// remember keeps a revocation for r.rewriteWindow (rewriteWindow; tests
// shorten it).
func (r *Redis) remember(key string, e revEntry, until time.Time) {
	now := time.Now()
	r.recentMu.Lock()
	defer r.recentMu.Unlock()
	i := 0
	for i < len(r.recent) && (now.Sub(r.recent[i].written) > r.rewriteWindow || len(r.recent)-i >= maxRecent) {
		i++
	}
	r.recent = append(r.recent[i:], recentRevocation{key: key, e: e, until: until, written: now})
}

// rewriteRecent writes this instance's recent revocations again, to the
// master that is current now, and returns how many it wrote. A failure is
// left for the next master change: the mirrors that got the announcement
// keep the revocation meanwhile.
func (r *Redis) rewriteRecent(ctx context.Context) int {
	now := time.Now()
	r.recentMu.Lock()
	var todo []recentRevocation
	for _, rr := range r.recent {
		if now.Sub(rr.written) <= r.rewriteWindow && rr.until.After(r.now()) {
			todo = append(todo, rr)
		}
	}
	r.recentMu.Unlock()
	n := 0
	for _, rr := range todo {
		wrote, refused := r.writeBack(ctx, revokeScript, rr.key, rr.e, rr.until)
		if wrote {
			n++
		}
		if refused {
			break
		}
	}
	return n
}

// writeBack writes a revocation again (rewriteRecent, writeUnwritten,
// restoreMissing) with script, under the store timeout but at least a
// second, and reports whether Redis wrote it and whether it refused the
// write: then the rest of a batch would wait in vain, and is left for the
// next try.
func (r *Redis) writeBack(ctx context.Context, script *redis.Script, key string, e revEntry, until time.Time) (wrote, refused bool) {
	ctx, cancel := context.WithTimeout(ctx, max(r.timeout, time.Second))
	defer cancel()
	ttl, err := r.writeRevocationWith(ctx, script, key, e, until)
	return ttl > 0, ttl <= 0 && err != nil
}

// entryKey is the Redis key of revocation e.
func (r *Redis) entryKey(e revEntry) string {
	if e.SID != "" {
		return r.sidKey(e.SID)
	}
	return r.cutKey(e.Tenant, e.Subject)
}
