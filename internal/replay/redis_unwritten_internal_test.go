package replay

import (
	"strconv"
	"testing"
	"time"
)

// Unwritten revocations of one key merge as revokeScript merges them (the
// later expiry, the later cutoff instant); a stored write forgets one only
// when it covers it; past maxUnwritten the newest are counted as dropped,
// not kept.
func TestUnwrittenMergeAndBound(t *testing.T) {
	r := &Redis{}
	t0 := time.Unix(1_700_000_000, 0)
	cut := func(at int64) revEntry { return revEntry{Tenant: "acme", At: at} }
	r.keepUnwritten("k", cut(10), t0.Add(time.Hour))
	r.keepUnwritten("k", cut(5), t0.Add(2*time.Hour))
	if u := r.unwritten["k"]; u.e.At != 10 || !u.until.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("merged to at %d until %s, want the later of each", u.e.At, u.until)
	}
	r.stored("k", cut(10), t0.Add(time.Hour))  // an earlier expiry: does not cover it
	r.stored("k", cut(9), t0.Add(3*time.Hour)) // an earlier cutoff: does not cover it
	if _, ok := r.unwritten["k"]; !ok {
		t.Fatal("a stored write that does not cover the unwritten one made it forgotten")
	}
	r.stored("k", cut(10), t0.Add(2*time.Hour))
	if r.hasUnwritten() {
		t.Fatal("a covering stored write left it unwritten")
	}
	for i := range maxUnwritten + 2 {
		r.keepUnwritten(strconv.Itoa(i), revEntry{SID: "s"}, t0)
	}
	if len(r.unwritten) != maxUnwritten || r.unwrittenDropped != 2 {
		t.Fatalf("%d kept, %d dropped; want %d and 2", len(r.unwritten), r.unwrittenDropped, maxUnwritten)
	}
}
