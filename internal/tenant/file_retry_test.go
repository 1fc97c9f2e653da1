package tenant

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A deploy that writes the tenants file before the key file it names (or
// a {file.*} secret mounted a moment later) had its new version refused
// once and never tried again: the watcher only read content that changed,
// so the new tenant stayed out until the file itself was edited. The
// watcher now applies a version Apply refused again with backoff, reports
// a repeated refusal once, and stops retrying when the file changes or the
// version applies.
func TestWatcherRetriesVersionRefusedByApply(t *testing.T) {
	dir := t.TempDir()
	path, keyPath := filepath.Join(dir, "tenants.json"), filepath.Join(dir, "globex.pem")
	writeTenants(t, path, 0, 1, "")
	now := time.Unix(1e9, 0)
	var current *Registry
	var events []FileEvent
	applies := 0
	w := &Watcher{
		Path: path,
		Apply: func(cfgs []Config) error {
			applies++
			reg, err := NewRegistry(cfgs)
			if err == nil {
				current = reg
			}
			return err
		},
		Report: func(e FileEvent) { events = append(events, e) },
		Now:    func() time.Time { return now },
	}
	cfgs, v, err := ReadFile(path)
	if err != nil || w.Apply(cfgs) != nil {
		t.Fatal(err)
	}
	w.Seed(v)
	applies = 0

	// The new version names a key file that is not there yet.
	writeTenants(t, path, 0, 1, `,{"id":"globex","public_keys":[{"file":"`+keyPath+`"}],"frame_ancestors":["https://globex.example"]}`)
	touchLater(t, path)
	w.Check()
	if len(events) != 1 || events[0].Kind != FileRefused || events[0].Retry != firstRetry || !strings.Contains(events[0].Err.Error(), "globex.pem") {
		t.Fatalf("refused version: events %+v, want one FileRefused naming the key file with a %s retry", events, firstRetry)
	}
	if current.Len() != 1 {
		t.Fatalf("refused version applied: %d tenants", current.Len())
	}
	// Before the wait is over nothing is tried; after it, the same refusal
	// is not reported again, and the wait doubles each time, up to a minute.
	w.Check()
	if applies != 1 {
		t.Fatalf("retried before its wait: %d applies", applies)
	}
	wait := firstRetry
	for range 8 {
		now = now.Add(wait)
		w.Check()
		wait = min(2*wait, maxRetry)
		if w.retryWait != wait {
			t.Fatalf("backoff %s, want %s", w.retryWait, wait)
		}
	}
	if applies != 9 || len(events) != 1 {
		t.Fatalf("retries: %d applies, events %+v; want 9 applies, the refusal reported once", applies, events)
	}

	// The key file arrives: the next due retry applies the version.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(pemFile(t, &key.PublicKey), keyPath); err != nil {
		t.Fatal(err)
	}
	now = now.Add(maxRetry)
	w.Check()
	if _, ok := current.ByID("globex"); !ok || len(events) != 2 || events[1].Kind != FileApplied {
		t.Fatalf("after the key file: globex loaded %v, events %+v", ok, events)
	}
	now = now.Add(time.Hour)
	w.Check()
	if applies != 10 {
		t.Fatalf("applied again after it applied: %d applies", applies)
	}
}

// A refused version is retried only while it is the file's content: a new
// version replaces it (and is applied at once), and content that does not
// parse is not retried at all, since only a new version can fix it.
func TestWatcherRetryEndsWithNewVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenants.json")
	writeTenants(t, path, 0, 1, "")
	now := time.Unix(1e9, 0)
	var applied []int
	var events []FileEvent
	refuse := true
	w := &Watcher{
		Path: path,
		Apply: func(cfgs []Config) error {
			applied = append(applied, len(cfgs))
			if refuse {
				return os.ErrNotExist
			}
			return nil
		},
		Report: func(e FileEvent) { events = append(events, e) },
		Now:    func() time.Time { return now },
	}
	seedWithFile(t, w)
	writeTenants(t, path, 0, 2, "")
	touchLater(t, path)
	w.Check() // refused, pending
	writeTenants(t, path, 0, 3, "")
	touchLater(t, path)
	refuse = false
	w.Check() // the new version, applied at once
	now = now.Add(time.Hour)
	w.Check()
	if len(applied) != 2 || applied[0] != 2 || applied[1] != 3 {
		t.Fatalf("applied %v, want [2 3]: the refused version is dropped for the new one", applied)
	}
	writeTenants(t, path, 0, 1, `,{`)
	touchLater(t, path)
	w.Check()
	now = now.Add(time.Hour)
	w.Check()
	last := events[len(events)-1]
	if len(applied) != 2 || last.Kind != FileRefused || last.Retry != 0 {
		t.Fatalf("unparsable file: applied %v, last event %+v; want no apply and no retry", applied, last)
	}
}

// The retry's edges: nothing before its wait is over; a refusal for a new
// reason is reported with the current wait; a touch retries soon (the
// missing key file was just added), at most once a second; no retry while
// the file cannot be read; and none once the file holds content that does
// not parse, even straight after a version that was being retried.
func TestWatcherRetryEdges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenants.json")
	writeTenants(t, path, 0, 1, "")
	now := time.Unix(1e9, 0)
	applies := 0
	refusal := errors.New("key file a.pem: no such file")
	var events []FileEvent
	w := &Watcher{
		Path:   path,
		Apply:  func([]Config) error { applies++; return refusal },
		Report: func(e FileEvent) { events = append(events, e) },
		Now:    func() time.Time { return now },
	}
	seedWithFile(t, w)
	check := func(step string, wantApplies, wantEvents int) {
		t.Helper()
		w.Check()
		if applies != wantApplies || len(events) != wantEvents {
			t.Fatalf("%s: %d applies, events %+v; want %d applies, %d events", step, applies, events, wantApplies, wantEvents)
		}
	}
	writeTenants(t, path, 0, 2, "")
	touchLater(t, path)
	check("new version", 1, 1)

	now = now.Add(firstRetry - time.Nanosecond)
	check("a nanosecond before the wait is over", 1, 1)
	now = now.Add(time.Nanosecond)
	refusal = errors.New("key file b.pem: no such file")
	check("due, refused for a new reason", 2, 2)
	if e := events[1]; e.Kind != FileRefused || e.Err != refusal || e.Retry != 2*firstRetry {
		t.Fatalf("new reason reported as %+v, want FileRefused with the new error and a %s retry", e, 2*firstRetry)
	}

	// A touch (the key file was just added) brings the retry forward to a
	// second after the last try and restarts the backoff; touching on
	// every tick still retries at most once a second.
	touchLater(t, path)
	check("touched within a second of the last try", 2, 2)
	now = now.Add(firstRetry)
	check("a second after the last try, touched", 3, 2)
	if w.retryWait != firstRetry {
		t.Fatalf("backoff after a touch %s, want %s again", w.retryWait, firstRetry)
	}
	for range 4 {
		now = now.Add(firstRetry / 2)
		touchLater(t, path)
		w.Check()
	}
	if applies != 5 || w.retryWait != firstRetry {
		t.Fatalf("touched on every tick for 2s: %d applies (backoff %s), want 2 more, each a second apart", applies-3, w.retryWait)
	}

	if err := os.Rename(path, path+".away"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	check("unreadable", 5, 3)
	check("still unreadable", 5, 3)
	if err := os.Rename(path+".away", path); err != nil {
		t.Fatal(err)
	}
	check("readable again, the wait long over", 6, 4)
	if events[2].Kind != FileUnreadable || events[3].Kind != FileReadable {
		t.Fatalf("events %+v, want FileUnreadable then FileReadable", events[2:])
	}

	writeTenants(t, path, 0, 1, `,{`)
	touchLater(t, path)
	check("unparsable", 6, 5)
	now = now.Add(time.Hour)
	touchLater(t, path)
	check("unparsable, an hour on and touched", 6, 5)
	if e := events[4]; e.Kind != FileRefused || e.Retry != 0 {
		t.Fatalf("unparsable reported as %+v, want FileRefused without a retry", e)
	}
}

// seedWithFile seeds w with the version of its file as it is now.
func seedWithFile(t *testing.T, w *Watcher) {
	t.Helper()
	_, v, err := ReadFile(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	w.Seed(v)
}

// A watcher whose context is done does not rebuild, even when its tick is
// ready at the same moment (select picks either): at a config unload that
// rebuild would run against a released handler and be reported as a
// refused file. Many runs with a tick always ready make a missing check
// all but certain to show.
func TestWatcherStopsAtDoneContextWithTickReady(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenants.json")
	writeTenants(t, path, 0, 1, "")
	_, v, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeTenants(t, path, 0, 2, "")
	touchLater(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	applies := 0
	for range 200 {
		w := &Watcher{Path: path, Interval: time.Nanosecond, Apply: func([]Config) error { applies++; return nil }}
		w.Seed(v)
		w.Run(ctx)
	}
	if applies != 0 {
		t.Fatalf("%d rebuilds after the context was done", applies)
	}
}
