package assertion

import (
	"hash/maphash"
	"sync"
	"time"
)

// cache keeps one signed assertion per session id, reused until its
// `until` (iat + TTL/2) on requests of the same host and scheme.
//
// Bound: at most about size entries (about 1 KB each: the token, the
// entry, the map slot). The cache is split into shards (so
// parallel requests rarely share a lock); each shard holds a newer and an
// older generation of at most perGen entries each. When the newer one is
// full it becomes the older one and the old older one is dropped whole: the
// sessions not seen for the longest are forgotten and simply signed again
// on their next request (an LRU approximation with O(1) work and no list).
// A hit in the older generation moves the entry to the newer one.
type cache struct {
	seed   maphash.Seed
	shards []shard
	perGen int
}

type shard struct {
	mu       sync.Mutex
	cur, old map[string]*entry
}

// entry is one assertion. Its fields but tok and err are set before it is
// shared; tok and err are written once, before ready is closed.
type entry struct {
	ready    chan struct{}
	at       servedAt
	origin   string // policy.ServedOrigin of at: iss, and aud by default
	iat, exp time.Time
	until    time.Time
	tok      string
	err      error
}

const maxShards = 32

// newCache holds about size entries: 32 shards when size allows at least 8
// entries per generation in each, else one shard.
func newCache(size int) *cache {
	n := maxShards
	if size/(2*n) < 8 {
		n = 1
	}
	perGen := max(size/(2*n), 1)
	c := &cache{seed: maphash.MakeSeed(), shards: make([]shard, n), perGen: perGen}
	for i := range c.shards {
		c.shards[i].cur = make(map[string]*entry, perGen)
	}
	return c
}

func (c *cache) shard(key string) *shard {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	return &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

// servedAt is what a request's served origin is made of, compared on every
// request without building the origin: the raw Host, the scheme and the
// listener's port.
type servedAt struct {
	host string
	tls  bool
	port int
}

// get returns the entry to use for key. fresh means the caller must sign
// it and call done; window gives the new entry's times. A reused entry may
// still be in flight (ready not yet closed) when requests race at first.
// A hit needs the same origin: the same parts (no work on the common path),
// else the same origin built from them, since several spellings of a Host
// (case, a port) are one origin and must not make every request sign again.
func (c *cache) get(key string, at servedAt, origin func() string, now time.Time, window func() (iat, exp, until time.Time)) (*entry, bool) {
	sh := c.shard(key)
	sh.mu.Lock()
	e := sh.cur[key]
	if e == nil {
		if e = sh.old[key]; e != nil {
			delete(sh.old, key)
			c.put(sh, key, e)
		}
	}
	var o string
	if e != nil && now.Before(e.until) {
		if e.at == at {
			sh.mu.Unlock()
			return e, false
		}
		if o = origin(); e.origin == o {
			sh.mu.Unlock()
			return e, false
		}
	}
	if o == "" {
		o = origin()
	}
	e = &entry{ready: make(chan struct{}), at: at, origin: o}
	e.iat, e.exp, e.until = window()
	c.put(sh, key, e)
	sh.mu.Unlock()
	return e, true
}

// put adds e to the newer generation, turning generations over when full.
func (c *cache) put(sh *shard, key string, e *entry) {
	if _, ok := sh.cur[key]; !ok && len(sh.cur) >= c.perGen {
		sh.old = sh.cur
		sh.cur = make(map[string]*entry, c.perGen)
	}
	sh.cur[key] = e
}

// done publishes the signed token (or the error) of a fresh entry; a
// failed entry is removed, so the next request tries again.
func (c *cache) done(key string, e *entry, tok string, err error) {
	e.tok, e.err = tok, err
	if err != nil {
		sh := c.shard(key)
		sh.mu.Lock()
		if sh.cur[key] == e {
			delete(sh.cur, key)
		}
		if sh.old[key] == e {
			delete(sh.old, key)
		}
		sh.mu.Unlock()
	}
	close(e.ready)
}
