package policy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// trailerPost is a chunked POST of size bytes declaring an X-Checksum
// trailer, admitted by b (so its body carries the guard); onEOF fills the
// trailers net/http would have read.
func trailerPost(t *testing.T, b *Boundary, size int, onEOF map[string]string) *http.Request {
	t.Helper()
	body := &trailerBody{r: strings.NewReader(strings.Repeat("x", size))}
	r := httptest.NewRequest("POST", "https://portal.test/upload", body)
	r.ContentLength = -1
	r.Trailer = http.Header{"X-Checksum": nil}
	body.onEOF = func() {
		for k, v := range onEOF {
			r.Trailer[k] = []string{v}
		}
	}
	if err := b.Admit(r); err != nil {
		t.Fatal(err)
	}
	return r
}

// Memory exhaustion through the read-ahead: each request that declares a
// trailer may be held up to maxTrailerBody, so a session holder with many
// connections could have the gateway hold that on each. The bytes held at
// once (the read-ahead buffers' capacity) are bounded across requests; a
// request past the bound streams behind the guard (its forbidden trailer
// still fails the body at EOF), and what a request held comes back with
// its release.
func TestReadAheadBudgetBoundsWhatIsHeld(t *testing.T) {
	const chunk = aheadChunk
	b := newBoundary()
	b.ahead = &aheadBudget{limit: 3 * chunk}
	// 40 KiB: a first chunk, then a second as large.
	first := trailerPost(t, b, 40<<10, map[string]string{"X-Checksum": "a"})
	holdFirst, err := b.ReadTrailersAhead(first)
	if err != nil || first.ContentLength != 40<<10 {
		t.Fatalf("first: %v, length %d; want it read ahead", err, first.ContentLength)
	}
	if held := b.ahead.held.Load(); held != 2*chunk {
		t.Fatalf("held %d after a 40 KiB body, want its buffer's %d", held, 2*chunk)
	}
	// One chunk is left: the second is read that far and streams on.
	second := trailerPost(t, b, 40<<10, map[string]string{"X-Checksum": "b"})
	holdSecond, err := b.ReadTrailersAhead(second)
	if err != nil || second.ContentLength != -1 || b.ahead.held.Load() != 3*chunk {
		t.Fatalf("second: %v, length %d, held %d", err, second.ContentLength, b.ahead.held.Load())
	}
	if got, err := io.ReadAll(second.Body); err != nil || len(got) != 40<<10 {
		t.Fatalf("second body: %d bytes, %v; want all of it", len(got), err)
	}
	// Nothing is left: a third is not read at all, and its forbidden
	// trailer fails the body at EOF, as for a body too long to hold.
	body := &countingBody{r: strings.NewReader("data")}
	third := httptest.NewRequest("POST", "https://portal.test/upload", body)
	third.ContentLength = -1
	third.Trailer = http.Header{"X-Checksum": nil}
	if err := b.Admit(third); err != nil {
		t.Fatal(err)
	}
	holdThird, err := b.ReadTrailersAhead(third)
	if err != nil || body.n != 0 {
		t.Fatalf("third: %v after reading %d bytes; want it streamed", err, body.n)
	}
	third.Trailer["X-Embed-Subject"] = []string{"mallory"}
	if _, err := io.ReadAll(third.Body); !errors.Is(err, ErrProtectedTrailer) {
		t.Fatalf("third, streamed with a forbidden trailer: %v, want ErrProtectedTrailer", err)
	}
	holdThird.Release()
	holdFirst.Release()
	holdFirst.Release() // once only: a second release gives nothing back
	if held := b.ahead.held.Load(); held != chunk {
		t.Fatalf("held %d with only the second's hold left, want %d", held, chunk)
	}
	holdSecond.Release()
	if held := b.ahead.held.Load(); held != 0 {
		t.Fatalf("held %d after every release, want 0", held)
	}
	// The budget is whole again: a body is read ahead once more.
	fourth := trailerPost(t, b, 80<<10, map[string]string{"X-Checksum": "d"})
	holdFourth, err := b.ReadTrailersAhead(fourth)
	if err != nil || fourth.ContentLength != 80<<10 {
		t.Fatalf("fourth: %v, length %d; want it read ahead", err, fourth.ContentLength)
	}
	holdFourth.Release()
}

// A body that sends nothing holds one chunk of the budget, not the most
// it might grow to: eight connections that declare a trailer and then
// stall took the whole 64 MiB while the gateway held no byte of theirs,
// and every other upload streamed, its forged trailer stopped only at EOF
// (a 502) rather than refused up front.
func TestReadAheadBudgetNotSpentByStalledBodies(t *testing.T) {
	b := newBoundary()
	b.ahead = &aheadBudget{limit: maxAheadTotal}
	const stalled = maxAheadTotal/(maxTrailerBody+1) + 1
	var wg sync.WaitGroup
	holds := make(chan *AheadHold, stalled)
	var pipes []*io.PipeWriter
	t.Cleanup(func() {
		for _, pw := range pipes {
			_ = pw.Close()
		}
		wg.Wait()
		close(holds)
		for h := range holds {
			h.Release()
		}
	})
	for range stalled {
		pr, pw := io.Pipe()
		pipes = append(pipes, pw)
		r := httptest.NewRequest("POST", "https://portal.test/upload", pr)
		r.ContentLength = -1
		r.Trailer = http.Header{"X-Checksum": nil}
		if err := b.Admit(r); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			hold, _ := b.ReadTrailersAhead(r) // blocks until the pipe closes
			holds <- hold
		})
	}
	for deadline := time.Now().Add(5 * time.Second); b.ahead.held.Load() < stalled*aheadChunk; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("held %d: the stalled bodies did not start", b.ahead.held.Load())
		}
	}
	if held := b.ahead.held.Load(); held != stalled*aheadChunk {
		t.Fatalf("%d stalled bodies hold %d, want one chunk each (%d)", stalled, held, stalled*aheadChunk)
	}
	r := trailerPost(t, b, 4, map[string]string{"X-Checksum": "a", "X-Embed-Subject": "mallory"})
	if _, err := b.ReadTrailersAhead(r); err == nil {
		t.Fatal("with stalled bodies in flight, a forged trailer was not refused up front")
	}
}

// A refused or unreadable read-ahead gives its bytes back at once: the
// caller gets no hold.
func TestReadAheadBudgetGivenBackOnRefusal(t *testing.T) {
	b := newBoundary()
	b.ahead = &aheadBudget{limit: 1 << 20}
	r := trailerPost(t, b, 100, map[string]string{"X-Checksum": "a", "X-Embed-Tenant": "beta"})
	if hold, err := b.ReadTrailersAhead(r); err == nil || hold != nil {
		t.Fatalf("a forbidden trailer: hold %v, %v", hold, err)
	}
	if held := b.ahead.held.Load(); held != 0 {
		t.Fatalf("held %d after a refusal, want 0", held)
	}
	r = httptest.NewRequest("POST", "https://portal.test/upload", io.NopCloser(failingReader{}))
	r.ContentLength = -1
	r.Trailer = http.Header{"X-Checksum": nil}
	if hold, err := b.ReadTrailersAhead(r); err == nil || hold != nil {
		t.Fatalf("a body that failed to read: hold %v, %v", hold, err)
	}
	if held := b.ahead.held.Load(); held != 0 {
		t.Fatalf("held %d after a failed read, want 0", held)
	}
}

// A body of exactly maxTrailerBody is read ahead whole; one byte more
// streams.
func TestReadAheadAtTheLimit(t *testing.T) {
	b := newBoundary()
	b.ahead = &aheadBudget{limit: 2 * maxTrailerBody}
	for _, c := range []struct {
		size int
		held bool
	}{{maxTrailerBody, true}, {maxTrailerBody + 1, false}} {
		r := trailerPost(t, b, c.size, map[string]string{"X-Checksum": "a"})
		hold, err := b.ReadTrailersAhead(r)
		if err != nil || (r.ContentLength == int64(c.size)) != c.held {
			t.Fatalf("%d bytes: %v, length %d; want read ahead %v", c.size, err, r.ContentLength, c.held)
		}
		if got, err := io.ReadAll(r.Body); err != nil || len(got) != c.size {
			t.Fatalf("%d bytes: body of %d, %v", c.size, len(got), err)
		}
		hold.Release()
	}
}

// Every Boundary of the process shares one budget: two embed_session
// handlers (or a reload's old and new one) cannot each hold the whole.
func TestReadAheadBudgetIsProcessWide(t *testing.T) {
	if a, b := NewBoundary(nil), NewBoundary([]string{"X-Org-Id"}); a.ahead != b.ahead || a.ahead != processAhead {
		t.Fatal("two boundaries have budgets of their own")
	}
	if processAhead.limit < maxTrailerBody {
		t.Fatalf("the process budget %d holds less than one body", processAhead.limit)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }
