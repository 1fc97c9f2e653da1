package session

import (
	"sync"

	"github.com/embedgate/embedgate/internal/keyhash"
)

// openCache remembers the sessions that Open has authenticated, so a
// cookie the browser sends again (the common case: the same cookie on every
// request of a page) costs a hash and a copy instead of a base64 decode, an
// AES-GCM open and a decode. It only saves work: every check Open leaves to
// its callers (expiry, idle time, revocation, the tenant still configured)
// still runs on every request, on the copy returned.
//
// Entries are keyed by keyhash of (host, cookie value): nobody outside can
// aim for a collision, and a cookie only hits an entry opened for the same
// host. A
// Sealer's keys never change, so an entry stays right for its whole life;
// a new key ring is a new Sealer with an empty cache.
//
// It is bounded: openCacheShards shards, each holding two generations of
// at most openCacheShardSize entries. When a shard's newer generation
// fills, the older one is dropped whole and the newer becomes the older:
// the sessions not seen for the longest are opened again next time.
type openCache struct {
	hash   keyhash.Hasher
	shards [openCacheShards]openShard
}

const (
	openCacheShards = 32
	// 32 × 2 × 256: at most 16,384 sessions; some 5 MB for typical ones,
	// 64 MB if every one were a cookie of the largest size Open accepts.
	openCacheShardSize = 256
)

type openShard struct {
	mu       sync.Mutex
	cur, old map[keyhash.Key]*Session
}

func newOpenCache() *openCache {
	c := &openCache{hash: keyhash.New()}
	for i := range c.shards {
		c.shards[i].cur = make(map[keyhash.Key]*Session)
	}
	return c
}

func (c *openCache) key(value, host string) keyhash.Key { return c.hash.Pair(host, value) }

// get returns a copy of the session opened for k, which the caller may
// change (the gateway moves LastSeen); its slices are shared and read-only.
func (c *openCache) get(k keyhash.Key) (*Session, bool) {
	sh := &c.shards[k.Shard(openCacheShards)]
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
func (c *openCache) put(k keyhash.Key, s *Session) {
	cp := *s
	sh := &c.shards[k.Shard(openCacheShards)]
	sh.mu.Lock()
	sh.putLocked(k, &cp)
	sh.mu.Unlock()
}

func (sh *openShard) putLocked(k keyhash.Key, s *Session) {
	if len(sh.cur) >= openCacheShardSize {
		sh.old, sh.cur = sh.cur, make(map[keyhash.Key]*Session, openCacheShardSize)
	}
	sh.cur[k] = s
}
