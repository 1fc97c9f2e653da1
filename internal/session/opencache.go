package session

import (
	"crypto/subtle"
	"encoding/binary"
	"hash/maphash"
	"strings"
	"sync"
	"unsafe"
)

// openCache remembers the sessions that Open has authenticated, so a
// cookie the browser sends again (the common case: the same cookie on every
// request of a page) costs a hash, a comparison and a copy instead of a
// base64 decode, an AES-GCM open and a decode. It only saves work: every
// check Open leaves to its callers (expiry, idle time, revocation, the
// tenant still configured) still runs on every request, on the copy
// returned.
//
// An entry keeps the cookie value and host it was opened for, and a hit
// needs both to match exactly (the value compared in constant time); the
// seeded hash only picks the slot, so a collision is a miss, never another
// user's session. A Sealer's keys never change, so an entry stays right for
// its whole life; a new key ring is a new Sealer with an empty cache.
//
// It is bounded: openCacheShards shards, each holding two generations of
// at most openCacheShardSize entries. When a shard's newer generation
// fills, the older one is dropped whole and the newer becomes the older:
// the sessions not seen for the longest are opened again next time.
type openCache struct {
	seed   maphash.Seed
	shards [openCacheShards]openShard
}

const (
	openCacheShards = 32
	// 32 × 2 × 256: at most 16,384 sessions; some 8 MB for typical ones,
	// 128 MB if every one were a cookie of the largest size Open accepts.
	openCacheShardSize = 256
)

type openEntry struct {
	value, host string
	sess        Session
	claims      map[string]any // sess.Claims decoded once; read-only
}

type openShard struct {
	mu       sync.Mutex
	cur, old map[uint64]*openEntry
}

func newOpenCache() *openCache {
	c := &openCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].cur = make(map[uint64]*openEntry)
	}
	return c
}

// key picks the slot for (value, host): two one-shot hashes, which cost
// half of one streamed through a maphash.Hash (it copies into its buffer).
// The host's is multiplied by an odd constant so that swapping value and
// host does not give the same key; a collision is only a miss anyway.
func (c *openCache) key(value, host string) uint64 {
	return maphash.String(c.seed, value) ^ maphash.String(c.seed, host)*0x9e3779b97f4a7c15
}

func (c *openCache) shard(k uint64) *openShard { return &c.shards[k&(openCacheShards-1)] }

// get returns the session opened for exactly (value, host) and its decoded
// claims. Both are the entry's own, shared by every request that sends the
// cookie, so they are read-only: a caller that changes the session (the
// gateway moving LastSeen) changes a copy. Not copying here saves an
// allocation on every request with a session.
func (c *openCache) get(k uint64, value, host string) (*Session, map[string]any, bool) {
	sh := c.shard(k)
	sh.mu.Lock()
	e, ok := sh.cur[k]
	if !ok {
		if e, ok = sh.old[k]; ok {
			sh.putLocked(k, e)
		}
	}
	sh.mu.Unlock()
	if !ok || e.host != host || !equalConstantTime(e.value, value) {
		return nil, nil, false
	}
	return &e.sess, e.claims, true
}

// put keeps a copy of s for (value, host) and returns the copy kept, which
// is shared and read-only like get's. The strings are cloned: they come
// from a request's header, whose memory the cache must not keep alive.
func (c *openCache) put(k uint64, value, host string, s *Session, claims map[string]any) *Session {
	e := &openEntry{value: strings.Clone(value), host: strings.Clone(host), sess: *s, claims: claims}
	sh := c.shard(k)
	sh.mu.Lock()
	sh.putLocked(k, e)
	sh.mu.Unlock()
	return &e.sess
}

func (sh *openShard) putLocked(k uint64, e *openEntry) {
	if len(sh.cur) >= openCacheShardSize {
		sh.old, sh.cur = sh.cur, make(map[uint64]*openEntry, openCacheShardSize)
	}
	sh.cur[k] = e
}

// equalConstantTime reports whether a and b are equal, in time that depends
// on their lengths only: subtle.ConstantTimeCompare's rule, eight bytes a
// step (a cookie is about 150 bytes, compared on every request).
func equalConstantTime(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	x := unsafe.Slice(unsafe.StringData(a), len(a))
	y := unsafe.Slice(unsafe.StringData(b), len(b))
	var v uint64
	i := 0
	for ; i+8 <= len(x); i += 8 {
		v |= binary.LittleEndian.Uint64(x[i:]) ^ binary.LittleEndian.Uint64(y[i:])
	}
	var tail byte
	for ; i < len(x); i++ {
		tail |= x[i] ^ y[i]
	}
	return subtle.ConstantTimeEq(int32(uint32(v>>32)|uint32(v)|uint32(tail)), 0) == 1
}
