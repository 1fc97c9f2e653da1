package replay

import (
	"maps"
	"sync"
	"time"

	"github.com/embedgate/embedgate/internal/keyhash"
	"github.com/embedgate/embedgate/internal/reason"
)

// usedTable is Memory's record of used token ids: a 128-bit keyed hash of
// (tenant, jti) mapped to the entry's expiry in Unix nanoseconds, in
// usedShards maps with a lock each.
//
// Why not a map of strings: with a million live entries, a map whose keys
// and values hold pointers is one the garbage collector walks on every
// cycle, and under an exchange load that walk shows up as tail latency.
// These maps hold no pointers, so the collector skips them, an entry costs
// about 40 bytes instead of about 130, and a Claim allocates nothing.
//
// The key is keyhash's: nobody outside can aim for a collision, and one
// could only make a fresh token look used (refused as replayed, and the
// host mints another); it can never let a used token through.
type usedTable struct {
	hash   keyhash.Hasher
	shards [usedShards]usedShard
}

type usedShard struct {
	mu   sync.Mutex
	m    map[keyhash.Key]int64
	peak int      // the most entries m has held since it was made
	_    [32]byte // keeps neighbouring shards' locks off one cache line
}

func newUsedTable() *usedTable {
	t := &usedTable{hash: keyhash.New()}
	for i := range t.shards {
		t.shards[i].m = make(map[keyhash.Key]int64)
	}
	return t
}

// claim records (tenant, jti) until now()+ttl, or refuses it as replayed
// when it is recorded and not yet expired. The check and the write happen
// under the shard's lock, so two concurrent claims cannot both succeed.
func (t *usedTable) claim(tenant, jti string, now func() time.Time, ttl time.Duration) error {
	k := t.hash.Pair(tenant, jti)
	sh := &t.shards[k.Shard(usedShards)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n := now().UnixNano()
	if exp, ok := sh.m[k]; ok && exp > n {
		// No jti in the detail: details are logged, ids are not.
		return reason.Errorf(reason.Replayed, "token id already used for tenant %q", tenant)
	}
	sh.m[k] = addNanos(n, ttl)
	sh.peak = max(sh.peak, len(sh.m))
	return nil
}

// sweep deletes the entries expired at now, one shard at a time, so a
// claim never waits for more than one shard's pass. Go maps never shrink:
// a shard left with under a quarter of its peak is copied into a new map,
// so the memory of a burst is given back once its window has passed.
func (t *usedTable) sweep(now int64) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for k, exp := range sh.m {
			if exp <= now {
				delete(sh.m, k)
			}
		}
		if len(sh.m) < sh.peak/4 {
			// Not maps.Clone: it copies the table at its old size.
			m := make(map[keyhash.Key]int64, len(sh.m))
			maps.Copy(m, sh.m)
			sh.m = m
			sh.peak = len(sh.m)
		}
		sh.mu.Unlock()
	}
}
