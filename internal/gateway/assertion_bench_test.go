package gateway_test

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/embedgate/embedgate/internal/assertion"
	"github.com/embedgate/embedgate/internal/gateway"
)

// withBenchAssertions turns assertions on (ES256, one forwarded claim path)
// on the gateway's clock.
func withBenchAssertions(b *testing.B) func(*gateway.Config) {
	return func(c *gateway.Config) {
		k, _, err := assertion.GenerateKey()
		if err != nil {
			b.Fatal(err)
		}
		ring, err := assertion.NewRing([]assertion.Key{k})
		if err != nil {
			b.Fatal(err)
		}
		if c.Assertions, err = assertion.New(assertion.Config{Keys: ring, SessionTTL: c.SessionTTL, Now: c.Now}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionPathAssertion is BenchmarkSessionPath with `assertion`
// on: the steady state, where the session's assertion is in the cache
// (signed once per TTL/2); it must stay within 10% of BenchmarkSessionPath
// in the same run.
func BenchmarkSessionPathAssertion(b *testing.B) {
	for _, n := range tenantCounts {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			checkBenchAssertion(b, n)
			benchmarkSessionPath(b, n, withBenchAssertions(b))
		})
	}
}

// checkBenchAssertion makes sure the variant measures what it names: the
// app gets an assertion.
func checkBenchAssertion(b *testing.B, n int) {
	g := newBenchGateway(b, n, withBenchAssertions(b))
	v := g.login(b)
	r := &http.Request{
		Method: http.MethodGet, URL: &url.URL{Scheme: "https", Host: g.host, Path: "/"}, Host: g.host,
		TLS: &tls.ConnectionState{}, Header: http.Header{"Cookie": {cookieName + "=" + v}}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}
	var got string
	_ = g.gw.ServeHTTP(&benchWriter{h: http.Header{}}, r, func(w http.ResponseWriter, r *http.Request) error {
		got = r.Header.Get(assertion.DefaultHeader)
		return benchNext(w, r)
	})
	if got == "" {
		b.Fatal("no assertion reached the app")
	}
}
