package testsupport

import "io"

// TrailerBody is a request body of N zero bytes that calls OnEOF once when
// it ends, as net/http fills a request's trailers at the end of its body:
// OnEOF sets them (on the server side r.Trailer, on the client side the
// values a client sends after the body).
type TrailerBody struct {
	N     int
	OnEOF func()
}

func (b *TrailerBody) Read(p []byte) (int, error) {
	if b.N == 0 {
		if b.OnEOF != nil {
			b.OnEOF()
			b.OnEOF = nil
		}
		return 0, io.EOF
	}
	k := min(len(p), b.N)
	clear(p[:k])
	b.N -= k
	return k, nil
}

// Close implements io.Closer, so the body can stand as a request's Body.
func (b *TrailerBody) Close() error { return nil }
