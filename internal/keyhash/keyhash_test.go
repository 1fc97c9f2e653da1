package keyhash

import "testing"

// TestPairNamesThePair: the same pair always gets the same key from one
// Hasher; the split point, either string, and the Hasher's seeds change it.
func TestPairNamesThePair(t *testing.T) {
	h := New()
	k := h.Pair("acme", "jti-1")
	if h.Pair("acme", "jti-1") != k {
		t.Fatal("the same pair, two keys")
	}
	for _, other := range [][2]string{{"acme", "jti-2"}, {"acm", "ejti-1"}, {"acmejti-1", ""}, {"", "acmejti-1"}, {"globex", "jti-1"}} {
		if h.Pair(other[0], other[1]) == k {
			t.Errorf("(%q, %q) has the key of (acme, jti-1)", other[0], other[1])
		}
	}
	if New().Pair("acme", "jti-1") == k {
		t.Error("two Hashers share their seeds")
	}
}

func TestShardIsBelowN(t *testing.T) {
	h := New()
	seen := map[int]bool{}
	for i := range 4096 {
		s := h.Pair("t", string(rune('a'+i%26))+string(rune(i))).Shard(32)
		if s < 0 || s >= 32 {
			t.Fatalf("shard %d out of [0, 32)", s)
		}
		seen[s] = true
	}
	if len(seen) != 32 {
		t.Errorf("4096 keys reached %d of 32 shards", len(seen))
	}
}
