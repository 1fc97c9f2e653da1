package policy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
// once are bounded across requests; a request past the bound streams
// behind the guard (its forbidden trailer still fails the body at EOF),
// and what a request held comes back with its release.
func TestReadAheadBudgetBoundsWhatIsHeld(t *testing.T) {
	b := newBoundary()
	b.ahead = &aheadBudget{limit: 100}
	first := trailerPost(t, b, 60, map[string]string{"X-Checksum": "a"})
	releaseFirst, err := b.ReadTrailersAhead(first)
	if err != nil || first.ContentLength != 60 {
		t.Fatalf("first: %v, length %d; want it read ahead", err, first.ContentLength)
	}
	if held := b.ahead.held.Load(); held != 60 {
		t.Fatalf("held %d after a 60-byte body, want 60", held)
	}
	// Only 40 bytes are left: the second is read that far and streams on.
	second := trailerPost(t, b, 60, map[string]string{"X-Checksum": "b"})
	releaseSecond, err := b.ReadTrailersAhead(second)
	if err != nil || second.ContentLength != -1 || b.ahead.held.Load() != 100 {
		t.Fatalf("second: %v, length %d, held %d", err, second.ContentLength, b.ahead.held.Load())
	}
	if got, err := io.ReadAll(second.Body); err != nil || len(got) != 60 {
		t.Fatalf("second body: %d bytes, %v; want all 60", len(got), err)
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
	releaseThird, err := b.ReadTrailersAhead(third)
	if err != nil || body.n != 0 {
		t.Fatalf("third: %v after reading %d bytes; want it streamed", err, body.n)
	}
	third.Trailer["X-Embed-Subject"] = []string{"mallory"}
	if _, err := io.ReadAll(third.Body); !errors.Is(err, ErrProtectedTrailer) {
		t.Fatalf("third, streamed with a forbidden trailer: %v, want ErrProtectedTrailer", err)
	}
	releaseThird()
	releaseFirst()
	releaseSecond()
	if held := b.ahead.held.Load(); held != 0 {
		t.Fatalf("held %d after every release, want 0", held)
	}
	// The budget is whole again: a body is read ahead once more.
	fourth := trailerPost(t, b, 80, map[string]string{"X-Checksum": "d"})
	releaseFourth, err := b.ReadTrailersAhead(fourth)
	if err != nil || fourth.ContentLength != 80 {
		t.Fatalf("fourth: %v, length %d; want it read ahead", err, fourth.ContentLength)
	}
	releaseFourth()
}

// A refused or unreadable read-ahead gives its bytes back at once: the
// caller gets no release to call.
func TestReadAheadBudgetGivenBackOnRefusal(t *testing.T) {
	b := newBoundary()
	b.ahead = &aheadBudget{limit: 1 << 20}
	r := trailerPost(t, b, 100, map[string]string{"X-Checksum": "a", "X-Embed-Tenant": "beta"})
	if _, err := b.ReadTrailersAhead(r); err == nil {
		t.Fatal("a forbidden trailer passed")
	}
	if held := b.ahead.held.Load(); held != 0 {
		t.Fatalf("held %d after a refusal, want 0", held)
	}
	r = httptest.NewRequest("POST", "https://portal.test/upload", io.NopCloser(failingReader{}))
	r.ContentLength = -1
	r.Trailer = http.Header{"X-Checksum": nil}
	if _, err := b.ReadTrailersAhead(r); err == nil {
		t.Fatal("a body that failed to read passed")
	}
	if held := b.ahead.held.Load(); held != 0 {
		t.Fatalf("held %d after a failed read, want 0", held)
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
