package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// readFromRecorder is a response writer that, like net/http's, is an
// io.ReaderFrom (the path to sendfile), and records that it was used.
type readFromRecorder struct {
	*httptest.ResponseRecorder
	readFrom bool
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.readFrom = true
	return io.Copy(r.ResponseRecorder.Body, src)
}

// TestFramingWriterKeepsReadFrom: a body copied into the framing writer
// (as http.ServeContent does for file_server) reaches the ReaderFrom
// underneath, after the framing policy was merged into the header.
func TestFramingWriterKeepsReadFrom(t *testing.T) {
	rec := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
	rec.Header().Set("Content-Security-Policy", "default-src 'self'")
	rec.Header().Set("X-Frame-Options", "DENY")
	fw := &framingWriter{ResponseWriter: rec, csp: "frame-ancestors https://host.test"}
	var w http.ResponseWriter = fw
	rf, ok := w.(io.ReaderFrom)
	if !ok {
		t.Fatal("framingWriter is not an io.ReaderFrom")
	}
	n, err := rf.ReadFrom(strings.NewReader("file body"))
	if err != nil || n != 9 {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	if !rec.readFrom {
		t.Error("the writer underneath was not used as an io.ReaderFrom")
	}
	if rec.Code != http.StatusOK || rec.Body.String() != "file body" {
		t.Errorf("response %d %q", rec.Code, rec.Body.String())
	}
	csp := rec.Header().Values("Content-Security-Policy")
	if len(csp) != 1 || !strings.Contains(csp[0], "frame-ancestors https://host.test") || !strings.Contains(csp[0], "default-src 'self'") {
		t.Errorf("CSP not merged before the body: %q", csp)
	}
	if rec.Header().Get("X-Frame-Options") != "" {
		t.Error("X-Frame-Options kept")
	}
}
