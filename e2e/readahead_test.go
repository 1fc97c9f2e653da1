package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/testsupport"
)

// TestBoundaryReadAheadBudgetComesBack stops memory exhaustion through the
// trailer read-ahead, through the built binary over HTTP/1.1 and HTTP/2:
// the bytes read ahead to check declared trailers are bounded across the
// process (64 MiB) and come back once each request is done. Were they
// kept (a request context that never ends, a release skipped), the
// uploads here would spend the budget for good, and a forged trailer
// would stream to the app, to be stopped only at the end of its body,
// instead of being refused before anything goes upstream.
func TestBoundaryReadAheadBudgetComesBack(t *testing.T) {
	g, up := withUpstream(t, "", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	cookie := sessionLine(t, g, nil)
	const size = 8<<20 - 1 // just under what one read-ahead may hold
	for _, h2 := range []bool{false, true} {
		client := g.Client()
		tr := client.Transport.(*http.Transport).Clone()
		tr.ForceAttemptHTTP2 = h2
		client.Transport = tr
		for i := range 10 { // 10 × 8 MiB: more than the budget, one at a time
			body := &testsupport.TrailerBody{N: size}
			req, err := http.NewRequest(http.MethodPost, g.URL("portal.gate.test", "/upload"), body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = -1
			req.Header.Set("Cookie", strings.TrimPrefix(cookie, "Cookie: "))
			req.Trailer = http.Header{"X-Checksum": nil}
			body.OnEOF = func() { req.Trailer.Set("X-Checksum", "abc") }
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("h2=%v upload %d: %v", h2, i, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || (resp.ProtoMajor == 2) != h2 {
				t.Fatalf("h2=%v upload %d: %s %d", h2, i, resp.Proto, resp.StatusCode)
			}
		}
		tr.CloseIdleConnections()
	}
	// The budget comes back as each request's context ends, just after
	// its answer: allow that a moment.
	host := fmt.Sprintf("portal.gate.test:%d", g.HTTPSPort)
	forged := head("POST", "/upload", host, cookie, "Transfer-Encoding: chunked", "Trailer: X-Checksum") +
		"4\r\ndata\r\n0\r\nX-Checksum: abc\r\nX-Embed-Subject: mallory\r\n\r\n"
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		before := len(up.Requests())
		resp, body := raw(t, g, forged)
		if resp.StatusCode == http.StatusBadRequest {
			wantBoundary400(t, "a forged trailer after the uploads", resp, body)
			wantUnseen(t, "a forged trailer after the uploads", up, before)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("3 s after 20 uploads, a forged trailer still streams to the app (%d %s): the read-ahead budget did not come back", resp.StatusCode, body)
		}
	}
}
