package jwks

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Forged key sets over cleartext: an http key-set URL (allowed for
// loopback only) went through HTTP_PROXY, and a *.localhost name through
// DNS, so whoever answered there supplied the keys. http now never uses a
// proxy and connects to loopback addresses only; https keeps the
// environment's proxy.
func TestClientHTTPOnlyToLoopback(t *testing.T) {
	tr, ok := NewClient().Transport.(byScheme)
	if !ok {
		t.Fatalf("transport %T", NewClient().Transport)
	}
	if tr.http.(*http.Transport).Proxy != nil {
		t.Error("http requests may go through a proxy")
	}
	if tr.https.(*http.Transport).Proxy == nil {
		t.Error("https requests ignore the environment's proxy")
	}
	for addr, ok := range map[string]bool{
		"127.0.0.1:80": true, "127.5.0.1:80": true, "[::1]:80": true,
		"10.0.0.1:80": false, "192.0.2.1:8080": false, "[2001:db8::1]:80": false, "localhost:80": false,
	} {
		if err := loopbackOnly("tcp", addr, nil); (err == nil) != ok {
			t.Errorf("%s: %v, want allowed %v", addr, err, ok)
		}
	}
	// Refused before any packet leaves: the dialer's control runs first.
	if _, err := NewClient().Get("http://192.0.2.1:9/jwks"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("http to a non-loopback address: %v", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }))
	defer srv.Close()
	res, err := NewClient().Get(srv.URL)
	if err != nil {
		t.Fatalf("http to loopback: %v", err)
	}
	_ = res.Body.Close()
}
