package replay

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis can lose revocations that instances still hold in their mirrors:
// a Redis restarted without its data (no persistence, a supervisor or a
// container restart), and under Sentinel its replica resynced from that
// empty master; a failover to a replica that lacked them. A sign-out, an
// idle end or an admin revocation then held only on the instances
// running at the time, never on one started later, and a restarted
// instance took the signed-out session again. So a full resync that read
// everything also writes back what the mirror held before it began and
// Redis no longer has: SCAN returns every key present for its whole run,
// so such an entry is missing, not merely written meanwhile.

// restoreScript is revokeScript for a key a resync found missing: it
// writes and announces only if the key is still absent, and returns 0
// otherwise. After Redis lost its data every instance restores what it
// holds; one announcement per key, not one per instance and key, keeps
// that from flooding the subscribers' output buffers.
var restoreScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[2] .. ' ' .. ARGV[4] .. ' ' .. ARGV[1])
return tonumber(ARGV[2])
`)

// keySet is the set of revocation keys one resync listed; node scans run
// concurrently.
type keySet struct {
	mu   sync.Mutex
	keys map[string]struct{}
}

func (s *keySet) add(keys []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = make(map[string]struct{}, len(keys))
	}
	for _, k := range keys {
		s.keys[k] = struct{}{}
	}
}

func (s *keySet) has(k string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.keys[k]
	return ok
}

// heldEntry is one live mirror entry, as it would be written to Redis.
type heldEntry struct {
	e     revEntry
	until int64 // Unix nanos
}

// held copies the mirror's live entries.
func (m *mirror) held() []heldEntry {
	now := m.now().UnixNano()
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]heldEntry, 0, len(m.sessions)+len(m.cutoffs))
	for sid, until := range m.sessions {
		if until > now {
			out = append(out, heldEntry{revEntry{SID: sid}, until})
		}
	}
	for k, c := range m.cutoffs {
		if c.until > now {
			out = append(out, heldEntry{revEntry{Tenant: k.tenant, Subject: k.subject, At: c.at.UnixNano()}, c.until})
		}
	}
	return out
}

// restoreMissing writes back each of held whose key seen lacks, is still
// absent, and lives at least another second, and returns how many it
// wrote; it stops at the first write Redis refuses.
func (r *Redis) restoreMissing(ctx context.Context, held []heldEntry, seen *keySet) int {
	n := 0
	soon := r.now().Add(time.Second).UnixNano()
	for _, h := range held {
		key := r.entryKey(h.e)
		if h.until <= soon || seen.has(key) {
			continue
		}
		until := time.Unix(0, h.until)
		wrote, refused := r.writeBack(ctx, restoreScript, key, h.e, until)
		if refused {
			break
		}
		r.stored(key, h.e, until)
		if wrote {
			n++
		}
	}
	return n
}
