package gateway_test

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"testing"
)

// benchWriter is a reusable ResponseWriter that discards the body.
type benchWriter struct {
	h    http.Header
	code int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *benchWriter) WriteHeader(code int)        { w.code = code }

func (w *benchWriter) reset() {
	for k := range w.h {
		delete(w.h, k)
	}
	w.code = 0
}

var benchBody = []byte("app")

func benchNext(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(benchBody)
	return nil
}

// BenchmarkSessionPath is the per-request cost for a valid cookie that needs
// no refresh: open, checks, header rewrite, framing, next.
func BenchmarkSessionPath(b *testing.B) {
	e := newEnv(b)
	v := e.login()
	cookie := []string{"theme=dark; " + cookieName + "=" + v + "; lang=en"}
	u, _ := url.Parse(selfOrigin + "/deals/7?tab=notes")
	r := &http.Request{Method: http.MethodGet, URL: u, Host: "portal.gate.test", TLS: &tls.ConnectionState{}, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	w := &benchWriter{h: http.Header{}}
	// Warm-up and sanity check.
	r.Header["Cookie"] = cookie
	if err := e.gw.ServeHTTP(w, r, benchNext); err != nil || w.code != 200 || len(w.h["Set-Cookie"]) != 0 {
		b.Fatalf("warm-up: %v %d %v", err, w.code, w.h)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range r.Header {
			delete(r.Header, k)
		}
		r.Header["Cookie"] = cookie
		w.reset()
		if err := e.gw.ServeHTTP(w, r, benchNext); err != nil || w.code != http.StatusOK {
			b.Fatalf("status %d: %v", w.code, err)
		}
	}
}

// BenchmarkExchangeHS256 is one bearer exchange of a fresh HS256 token:
// verify, origin checks, seal, jti claim, cookie. Tokens and requests are
// prepared in batches outside the timer.
func BenchmarkExchangeHS256(b *testing.B) {
	e := newEnv(b)
	u, _ := url.Parse(selfOrigin + "/.embed/exchange")
	const batch = 512
	reqs := make([]*http.Request, 0, batch)
	prepare := func() {
		reqs = reqs[:0]
		for j := 0; j < batch; j++ {
			reqs = append(reqs, &http.Request{
				Method: http.MethodPost, URL: u, Host: "portal.gate.test", Body: http.NoBody, TLS: &tls.ConnectionState{},
				Header: http.Header{"Authorization": {"Bearer " + e.mint("acme")}, "Origin": {selfOrigin}},
			})
		}
	}
	w := &benchWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%batch == 0 {
			b.StopTimer()
			prepare()
			b.StartTimer()
		}
		w.reset()
		if err := e.gw.ServeHTTP(w, reqs[i%batch], benchNext); err != nil || w.code != http.StatusNoContent {
			b.Fatalf("exchange %d: status %d: %v", i, w.code, err)
		}
	}
}
