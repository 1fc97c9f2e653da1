package replay

import (
	"context"
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

// A store replacing another on a config reload takes over what the old
// one had not written and its recent revocations (adoptPending); the
// full resync's restore would only catch the first at its next complete
// load.
func TestAdoptPending(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	seed := &Redis{}
	seed.keepUnwritten("k1", revEntry{SID: "s1"}, t0)
	seed.unwrittenDropped = 3
	seed.recent = []recentRevocation{{key: "k2", e: revEntry{SID: "s2"}, until: t0}}
	r := &Redis{}
	r.adoptPending(seed)
	if u, ok := r.unwritten["k1"]; !ok || u.e.SID != "s1" || r.unwrittenDropped != 3 {
		t.Fatalf("unwritten %v, dropped %d", r.unwritten, r.unwrittenDropped)
	}
	if len(r.recent) != 1 || r.recent[0].key != "k2" {
		t.Fatalf("recent %v", r.recent)
	}
}

// What maxUnwritten dropped is reported once, as EventUnwrittenDropped
// with the count, at the next pass (the log says sign-outs were lost); an
// expired unwritten revocation is forgotten without a write.
func TestUnwrittenDroppedReportedOnce(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var events []Event
	r := &Redis{now: func() time.Time { return t0 }, report: func(e Event) { events = append(events, e) }}
	r.keepUnwritten("k", revEntry{SID: "s"}, t0.Add(-time.Second))
	r.unwrittenDropped = 2
	if n := r.writeUnwritten(context.Background()); n != 0 {
		t.Fatalf("%d written, want 0: the one kept had expired", n)
	}
	if len(events) != 1 || events[0].Kind != EventUnwrittenDropped || events[0].Entries != 2 {
		t.Fatalf("events %v, want one EventUnwrittenDropped of 2", events)
	}
	if r.hasUnwritten() {
		t.Fatal("the expired revocation and the dropped count are still pending")
	}
	r.writeUnwritten(context.Background())
	if len(events) != 1 {
		t.Fatalf("events %v: the drop was reported again", events)
	}
}
