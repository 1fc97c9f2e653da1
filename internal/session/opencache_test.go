package session

import (
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
)

// TestOpenCacheServesACopy: a cookie opened twice with Open gives the same
// session, and a caller that changes what Open returned (its own copy) does
// not change what the next request gets. OpenClaims shares the cached
// session instead (TestOpenClaimsDecodesOnce); the gateway copies before it
// moves LastSeen (internal/gateway TestSlidingRefresh).
func TestOpenCacheServesACopy(t *testing.T) {
	s := newSealer(t, cookieName, secret(1))
	want := typical()
	want.Origins = []string{"https://app.acme.com"}
	v := seal(t, s, want)
	first, err := s.Open(v, testHost)
	if err != nil {
		t.Fatal(err)
	}
	first.LastSeen = first.LastSeen.Add(1000)
	first.Subject = "mallory"
	// Its slices too: widening a narrowed frame-ancestors list in a copy
	// must not widen it for every later request with this cookie.
	first.Origins[0] = "https://evil.example"
	first.Claims[2] = 'X'
	second, err := s.Open(v, testHost)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(second, want) {
		t.Fatalf("second open = %+v, want %+v", second, want)
	}
	if second == first {
		t.Fatal("the same pointer twice")
	}
}

// TestOpenCacheIsUsed: a second open of the same cookie does not decrypt
// again. Shown by taking the key ring away after the first open: only the
// cached entry can still answer.
func TestOpenCacheIsUsed(t *testing.T) {
	s := newSealer(t, cookieName, secret(1))
	v := seal(t, s, typical())
	if _, err := s.Open(v, testHost); err != nil {
		t.Fatal(err)
	}
	s.keys = nil
	if _, err := s.Open(v, testHost); err != nil {
		t.Fatalf("cached cookie: %v", err)
	}
}

// TestOpenCacheIsPerHost: a cookie opened on one host and replayed on
// another still fails authentication (the host is additional data), cached
// or not.
func TestOpenCacheIsPerHost(t *testing.T) {
	s := newSealer(t, cookieName, secret(1))
	v := seal(t, s, typical())
	if _, err := s.Open(v, testHost); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(v, "other."+testHost); err == nil {
		t.Fatal("a cookie opened for one host opened for another")
	}
}

// TestOpenCacheKeepsNoFailure: a value that failed to open is not
// remembered, so it fails again (and a cookie refused once is never served
// from the cache later).
func TestOpenCacheKeepsNoFailure(t *testing.T) {
	s := newSealer(t, cookieName, secret(1))
	v := seal(t, s, typical())
	// The last character changed, always: a replacement chosen without
	// looking at it could be the same character.
	last := "A"
	if v[len(v)-1] == 'A' {
		last = "B"
	}
	bad := v[:len(v)-1] + last
	for range 2 {
		if _, err := s.Open(bad, testHost); err == nil {
			t.Fatal("a tampered cookie opened")
		}
	}
	for i := range s.opened.shards {
		if n := len(s.opened.shards[i].cur) + len(s.opened.shards[i].old); n != 0 {
			t.Fatalf("shard %d holds %d entries after failures only", i, n)
		}
	}
}

// TestOpenCacheIsBounded: many distinct cookies never hold more than the
// cache's bound, and recent ones stay.
func TestOpenCacheIsBounded(t *testing.T) {
	s := newSealer(t, cookieName, secret(1))
	const n = 4 * openCacheShards * openCacheShardSize
	var last string
	for i := range n {
		sess := typical()
		sess.ID = "session-" + strconv.Itoa(i)
		last = seal(t, s, sess)
		if _, err := s.Open(last, testHost); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for i := range s.opened.shards {
		sh := &s.opened.shards[i]
		if len(sh.cur) > openCacheShardSize || len(sh.old) > openCacheShardSize {
			t.Fatalf("shard %d: %d + %d entries, bound %d each", i, len(sh.cur), len(sh.old), openCacheShardSize)
		}
		total += len(sh.cur) + len(sh.old)
	}
	if total > 2*openCacheShards*openCacheShardSize {
		t.Fatalf("%d entries, bound %d", total, 2*openCacheShards*openCacheShardSize)
	}
	k := s.opened.key(last, testHost)
	if _, _, ok := s.opened.get(k, last, testHost); !ok {
		t.Fatal("the most recent session was dropped")
	}
}

// TestOpenCacheNeedsTheExactCookie: an entry is found by its hash slot but
// served only for the very value and host it was opened for, so a value
// that lands in the same slot (forced here by writing the entry under the
// other value's key) is a miss and goes through authentication.
func TestOpenCacheNeedsTheExactCookie(t *testing.T) {
	s := newSealer(t, cookieName, secret(1))
	v := seal(t, s, typical())
	if _, err := s.Open(v, testHost); err != nil {
		t.Fatal(err)
	}
	forged := v[:len(v)-2] + "AA"
	if forged == v {
		forged = v[:len(v)-2] + "BA"
	}
	kv, kf := s.opened.key(v, testHost), s.opened.key(forged, testHost)
	sh := s.opened.shard(kv)
	sh.mu.Lock()
	e := sh.cur[kv]
	sh.mu.Unlock()
	fs := s.opened.shard(kf)
	fs.mu.Lock()
	fs.cur[kf] = e // the forged value's slot now holds the real session
	fs.mu.Unlock()
	if _, _, ok := s.opened.get(kf, forged, testHost); ok {
		t.Fatal("a different cookie value was served the cached session")
	}
	if _, err := s.Open(forged, testHost); err == nil {
		t.Fatal("a forged cookie opened")
	}
	if _, _, ok := s.opened.get(kv, v, "other."+testHost); ok {
		t.Fatal("the cached session was served for another host")
	}
}

// TestOpenClaimsDecodesOnce: the claims of a cookie sent again come decoded
// from the cache (the same map, no decoding on the request), numbers as
// json.Number as before, and a cookie opened for the first time decodes
// them itself.
func TestOpenClaimsDecodesOnce(t *testing.T) {
	s := newSealer(t, cookieName, secret(1))
	in := typical()
	in.Claims = []byte(`{"role":"admin","seats":7}`)
	v := seal(t, s, in)
	sess, first, err := s.OpenClaims(v, testHost)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"role": "admin", "seats": json.Number("7")}
	if !reflect.DeepEqual(first, want) {
		t.Fatalf("claims = %#v, want %#v", first, want)
	}
	_, second, err := s.OpenClaims(v, testHost)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.ValueOf(second).UnsafePointer() != reflect.ValueOf(first).UnsafePointer() {
		t.Fatal("a cookie sent again had its claims decoded again")
	}
	if a, _, _ := s.OpenClaims(v, testHost); a != sess {
		t.Fatal("a cookie sent again was not given the session opened the first time")
	}
	// A hit allocates nothing, claims or not: the session is shared too.
	if n := testing.AllocsPerRun(100, func() { _, _, _ = s.OpenClaims(v, testHost) }); n != 0 {
		t.Fatalf("a cached open with claims allocates %v times", n)
	}
	plain := typical()
	plain.Claims = nil
	if _, c, err := s.OpenClaims(seal(t, s, plain), testHost); err != nil || c != nil {
		t.Fatalf("a session without claims: %v, %v", c, err)
	}
}
