package policy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/embedgate/embedgate/internal/reason"
)

// Request trailers, the boundary's channel that arrives last: after the
// headers were checked, and for net/http only once the body is read.

// refusesTrailer reports whether a request trailer named name may not
// reach the upstream: what the boundary removes from the headers (a
// protected or always-removed name), and the fields that route or
// authenticate a request (Cookie, the gateway's own cookies included;
// Host; Authorization; X-Forwarded-*), which a server that merges
// trailers into the headers (Apache's MergeTrailers, some Tomcat setups)
// would read as if the client had sent them up front. RFC 9110 section
// 6.5.1 forbids such fields in trailers; checksums and the like pass.
func (b *Boundary) refusesTrailer(name string) bool {
	return b.Protects(name) || IsAlwaysRemoved(name) ||
		equalFoldAny(name, trailerForbidden) || headerPrefix(name, "X-Forwarded-")
}

// refusedDeclared is the first declared trailer that no trailer may
// carry: net/http moves a declared Trailer header into r.Trailer's keys
// (trailer), and a handler-built request may still carry it as a header
// (declared).
func (b *Boundary) refusedDeclared(declared []string, trailer http.Header) (string, bool) {
	for _, name := range listTokens(declared) {
		if b.refusesTrailer(name) {
			return name, true
		}
	}
	for name := range trailer {
		if b.refusesTrailer(name) {
			return name, true
		}
	}
	return "", false
}

// trailerForbidden are the routing and authentication fields refused as
// request trailers, beyond the protected and always-removed ones.
var trailerForbidden = []string{
	"Cookie", "Host", "Authorization", "Proxy-Authorization", "X-Real-Ip",
	"Content-Length", "Transfer-Encoding", "Content-Type", "Content-Encoding", "Content-Range", "Trailer",
}

// guardBody makes sure no protected trailer reaches the upstream with r.
func (b *Boundary) guardBody(r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	// A body of unknown length may end in trailers nobody declared, and
	// one that declared some in more than it declared: the guard checks
	// them at EOF, wherever the body goes (upstream, or to an error route).
	if r.ContentLength < 0 || r.Trailer != nil {
		r.Body = &trailerGuard{ReadCloser: r.Body, req: r, b: b}
	}
	return nil
}

// maxTrailerBody bounds the body read ahead to check declared trailers; a
// longer one streams, and the guard fails it at EOF if a protected trailer
// comes.
const maxTrailerBody = 8 << 20

// maxAheadTotal bounds the bytes held by every read-ahead in flight at once,
// across the process: each is up to maxTrailerBody, and without a total a
// session holder with many connections could have the gateway hold
// maxTrailerBody on each. A body that finds the budget spent streams on
// behind the guard, which still fails it at EOF on a forbidden trailer
// (the upstream request aborts rather than a 400 up front).
const maxAheadTotal = 64 << 20

// aheadChunk is the first buffer of a read-ahead; it doubles from there.
// The budget is taken as the buffer grows, so a body that sends nothing
// holds this much of it, not maxTrailerBody.
const aheadChunk = 32 << 10

// aheadBudget is the process's share of read-ahead bytes: a read-ahead
// takes what its buffer grows by, and gives it all back once its request
// is done (AheadHold.Release).
type aheadBudget struct {
	limit int64
	held  atomic.Int64
}

// processAhead is the one budget every Boundary of the process shares, so
// that several embed_session handlers (or a reload's old and new ones)
// cannot each hold maxAheadTotal.
var processAhead = &aheadBudget{limit: maxAheadTotal}

// take reserves up to want bytes and returns how many it got (0 once the
// budget is spent).
func (a *aheadBudget) take(want int64) int64 {
	for {
		held := a.held.Load()
		got := min(want, a.limit-held)
		if got <= 0 {
			return 0
		}
		if a.held.CompareAndSwap(held, held+got) {
			return got
		}
	}
}

func (a *aheadBudget) give(n int64) {
	if n > 0 {
		a.held.Add(-n)
	}
}

// AheadHold is what one request's read-ahead holds of the budget.
type AheadHold struct {
	budget *aheadBudget
	n      atomic.Int64
}

// Release gives the hold back; once, however often it is called. A nil
// hold holds nothing.
func (h *AheadHold) Release() {
	if h != nil {
		h.budget.give(h.n.Swap(0))
	}
}

// ReadTrailersAhead is for a request Admit admitted, once it is about to go
// upstream (its session holds). net/http fills r.Trailer only when the
// body reaches EOF, after the request has gone upstream, and with every
// trailer sent, declared or not, once any is declared. So a request that
// declares trailers (rare: chunked uploads with a checksum) is read
// first, up to maxTrailerBody and as far as the process's read-ahead
// budget allows, and its trailers checked: a forbidden one is a 400 (a
// *reason.Error with reason.BadRequest) before anything goes upstream,
// rather than an upstream request aborted at EOF. The buffer stays r's
// body, so the caller releases the hold (non-nil when the body was read
// ahead) only once nothing may read the body any more.
func (b *Boundary) ReadTrailersAhead(r *http.Request) (*AheadHold, error) {
	if r.Trailer == nil || r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	return b.readTrailers(r)
}

// readTrailers reads r's body (up to maxTrailerBody, within the budget) so
// that its trailers are known, refuses a forbidden one, and puts the body
// back. A body longer than it could read streams on behind the guard.
func (b *Boundary) readTrailers(r *http.Request) (*AheadHold, error) {
	hold := &AheadHold{budget: b.ahead}
	buf, err := hold.read(r.Body)
	switch {
	case err == nil:
		// Too long to hold (or the budget is spent): the rest streams
		// behind the guard Admit put on the body.
		r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return hold, nil
	case !errors.Is(err, io.EOF):
		hold.Release()
		return nil, reason.Errorf(reason.BadRequest, "reading a body with trailers: %v", err)
	}
	for name := range r.Trailer {
		if b.refusesTrailer(name) {
			hold.Release()
			return nil, reason.Errorf(reason.BadRequest, "a trailer carries the header %s, which no trailer may carry", sanitizeName(name))
		}
	}
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.ContentLength = int64(len(buf))
	return hold, nil
}

// read reads body into a buffer that grows only as far as the budget
// gives, up to maxTrailerBody+1 bytes: io.EOF when it read the whole
// body, nil when it stopped short of the end.
func (h *AheadHold) read(body io.Reader) ([]byte, error) {
	var buf []byte
	for len(buf) <= maxTrailerBody {
		if len(buf) == cap(buf) {
			grow := h.budget.take(int64(min(max(cap(buf), aheadChunk), maxTrailerBody+1-cap(buf))))
			if grow == 0 {
				return buf, nil
			}
			h.n.Add(grow)
			buf = append(make([]byte, 0, cap(buf)+int(grow)), buf...)
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// readCloser reads from one reader and closes another.
type readCloser struct {
	io.Reader
	io.Closer
}

// ErrProtectedTrailer ends the body of a request whose trailers carry a
// protected header: the upstream request fails instead of completing with
// a forged identity in r.Trailer.
var ErrProtectedTrailer = errors.New("request trailer carries a protected header")

// trailerGuard checks the trailers net/http has just filled in at EOF, and
// removes protected ones before any reader of r.Trailer (the proxy copies
// them in its own body wrapper, which reads through this one) can see them.
type trailerGuard struct {
	io.ReadCloser
	req     *http.Request
	b       *Boundary
	refused bool // once refused, every later Read fails too
}

func (t *trailerGuard) Read(p []byte) (int, error) {
	if t.refused {
		return 0, ErrProtectedTrailer
	}
	n, err := t.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		for name := range t.req.Trailer {
			if t.b.refusesTrailer(name) {
				delete(t.req.Trailer, name)
				t.refused = true
			}
		}
		if t.refused {
			return n, ErrProtectedTrailer
		}
	}
	return n, err
}
