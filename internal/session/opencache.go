package session

import (
	"hash/maphash"
	"sync"
)

// openCache remembers the sessions that Open has authenticated, so a
// cookie the browser sends again (the common case: the same cookie on every
// request of a page) costs a hash and a copy instead of a base64 decode, an
// AES-GCM open and a decode. It only saves work: every check Open leaves to
// its callers (expiry, idle time, revocation, the tenant still configured)
// still runs on every request, on the copy returned.
//
// Entries are keyed by a 128-bit keyed hash of (host, cookie value) with
// two per-process random seeds, so nobody outside can aim for a collision,
// and a cookie only hits an entry that was opened for the same host. A
// Sealer's keys never change, so an entry stays right for its whole life;
// a new key ring is a new Sealer with an empty cache.
//
// It is bounded: openCacheShards shards, each holding two generations of
// at most openCacheShardSize entries. When a shard's newer generation
// fills, the older one is dropped whole and the newer becomes the older:
// the sessions not seen for the longest are opened again next time.
type openCache struct {
	seeds  [2]maphash.Seed
	shards [openCacheShards]openShard
}

const (
	openCacheShards = 32
	// 32 × 2 × 256: at most 16,384 sessions; some 5 MB for typical ones,
	// 64 MB if every one were a cookie of the largest size Open accepts.
	openCacheShardSize = 256
)

type openKey [2]uint64

type openShard struct {
	mu       sync.Mutex
	cur, old map[openKey]*Session
}

func newOpenCache() *openCache {
	c := &openCache{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	for i := range c.shards {
		c.shards[i].cur = make(map[openKey]*Session)
	}
	return c
}

func (c *openCache) key(value, host string) openKey {
	var k openKey
	for i := range k {
		var h maphash.Hash
		h.SetSeed(c.seeds[i])
		// A cookie value is base64url and never holds a NUL, so the
		// last NUL splits the pair unambiguously.
		_, _ = h.WriteString(host)
		_ = h.WriteByte(0)
		_, _ = h.WriteString(value)
		k[i] = h.Sum64()
	}
	return k
}

// get returns a copy of the session opened for k, which the caller may
// change (the gateway moves LastSeen); its slices are shared and read-only.
func (c *openCache) get(k openKey) (*Session, bool) {
	sh := &c.shards[k[0]&(openCacheShards-1)]
	sh.mu.Lock()
	s, ok := sh.cur[k]
	if !ok {
		if s, ok = sh.old[k]; ok {
			sh.putLocked(k, s)
		}
	}
	sh.mu.Unlock()
	if !ok {
		return nil, false
	}
	cp := *s
	return &cp, true
}

// put keeps a copy of s, so a caller's later change to s cannot reach it.
func (c *openCache) put(k openKey, s *Session) {
	cp := *s
	sh := &c.shards[k[0]&(openCacheShards-1)]
	sh.mu.Lock()
	sh.putLocked(k, &cp)
	sh.mu.Unlock()
}

func (sh *openShard) putLocked(k openKey, s *Session) {
	if len(sh.cur) >= openCacheShardSize {
		sh.old, sh.cur = sh.cur, make(map[openKey]*Session, openCacheShardSize)
	}
	sh.cur[k] = s
}
