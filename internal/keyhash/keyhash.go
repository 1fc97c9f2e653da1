// Package keyhash names a pair of strings by a 128-bit keyed hash, for an
// in-memory table that must not hold the strings themselves (the replay
// table's (tenant, jti) pairs): a map of
// fixed-size keys holds no pointers, so the garbage collector does not walk
// it, and an entry costs a fraction of a string key.
//
// The hash is keyed with two random seeds per Hasher, so nobody outside the
// process can aim for a collision. Callers use it only where a collision
// costs nothing but a lost cache hit or one refused fresh token, never an
// accepted forgery.
package keyhash

import "hash/maphash"

// Key is the 128-bit name of a pair.
type Key [2]uint64

// Hasher hashes pairs with its own seeds. The zero value is not usable.
type Hasher struct{ seeds [2]maphash.Seed }

// New returns a Hasher with fresh random seeds.
func New() Hasher { return Hasher{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}} }

// Pair hashes (a, b) as a, NUL, b, which names the pair unambiguously as
// long as one of the two never holds a NUL (then the first or the last NUL
// splits it): a tenant id, which tenant.New refuses with control
// characters.
func (h Hasher) Pair(a, b string) Key {
	var k Key
	for i := range k {
		var m maphash.Hash
		m.SetSeed(h.seeds[i])
		_, _ = m.WriteString(a)
		_ = m.WriteByte(0)
		_, _ = m.WriteString(b)
		k[i] = m.Sum64()
	}
	return k
}

// Shard is a shard index below n, a power of two.
func (k Key) Shard(n int) int { return int(k[0] & uint64(n-1)) }
