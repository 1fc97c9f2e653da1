package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/testsupport"
)

var t0 = time.Unix(1_700_000_000, 0).UTC()

// idp is a JWKS endpoint on loopback (TLS) whose document, status, headers
// and latency the test changes at will; it counts the requests it serves.
type idp struct {
	*httptest.Server
	mu      sync.Mutex
	body    string
	status  int
	cc      string
	block   chan struct{} // when set, requests wait on it
	fetches atomic.Int32
}

func newIdP(t *testing.T, keys ...map[string]any) *idp {
	s := &idp{status: 200, cc: "max-age=600"}
	s.setKeys(keys...)
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, status, cc, block := s.body, s.status, s.cc, s.block
		s.mu.Unlock()
		if block != nil {
			select {
			case <-block:
			case <-r.Context().Done():
				// Abort rather than return: a handler that returns sends an
				// empty 200, which can reach a client whose deadline has just
				// passed (its TLS close_notify is what ended this context).
				panic(http.ErrAbortHandler)
			}
		}
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *idp) setKeys(keys ...map[string]any) {
	if keys == nil {
		keys = []map[string]any{}
	}
	b, _ := json.Marshal(map[string]any{"keys": keys})
	s.set(func() { s.body = string(b) })
}

func (s *idp) set(f func()) {
	s.mu.Lock()
	f()
	s.mu.Unlock()
}

func newCache(t *testing.T, s *idp, c *testsupport.Clock, opts ...func(*Options)) (*Cache, *[]error) {
	t.Helper()
	var mu sync.Mutex
	errs := &[]error{}
	o := Options{URL: s.URL + "/.well-known/jwks.json", Client: s.Client(), Now: c.Now, Report: func(e Event) {
		mu.Lock()
		*errs = append(*errs, e.Err)
		mu.Unlock()
	}}
	for _, f := range opts {
		f(&o)
	}
	cache, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return cache, errs
}

// settle waits for a background refresh, if one runs.
func (c *Cache) settle() {
	c.mu.Lock()
	r := c.inflight
	c.mu.Unlock()
	if r != nil {
		<-r.done
	}
}

func enc64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func ecJWK(t *testing.T, kid string) (map[string]any, *ecdsa.PrivateKey) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := k.PublicKey.Bytes() // 0x04 || X || Y
	return map[string]any{"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "x": enc64(raw[1:33]), "y": enc64(raw[33:])}, k
}

func rsaJWK(t *testing.T, kid string, bits int, alg string) map[string]any {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{"kty": "RSA", "kid": kid, "n": enc64(k.N.Bytes()), "e": enc64(big.NewInt(int64(k.E)).Bytes())}
	if alg != "" {
		m["alg"] = alg
	}
	return m
}

func edJWK(t *testing.T, kid string) map[string]any {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": enc64(pub)}
}

func kids(keys []tenant.Key) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.KID+"/"+k.Alg)
	}
	return out
}

func TestStartFetchesAndPinsAlgorithms(t *testing.T) {
	ec, _ := ecJWK(t, "ec1")
	s := newIdP(t, ec, rsaJWK(t, "rsa1", 2048, "RS256"), edJWK(t, "ed1"))
	c, errs := newCache(t, s, testsupport.NewClock(t0))
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(kids(c.Keys()), " "); got != "ec1/ES256 rsa1/RS256 ed1/EdDSA" {
		t.Fatalf("keys = %s", got)
	}
	if k, ok := c.Lookup(t.Context(), "rsa1"); !ok || k.Alg != tenant.RS256 {
		t.Fatalf("Lookup(rsa1) = %+v, %v", k, ok)
	}
	if len(*errs) != 0 || s.fetches.Load() != 1 {
		t.Fatalf("errs %v, fetches %d", *errs, s.fetches.Load())
	}
}

// Rotation at the IdP: a new kid is picked up on first use, a removed key
// is gone after the next refresh.
func TestRotationNewKidPickedUpRemovedKeyRejected(t *testing.T) {
	clk := testsupport.NewClock(t0)
	k1, _ := ecJWK(t, "k1")
	k2, _ := ecJWK(t, "k2")
	s := newIdP(t, k1)
	c, _ := newCache(t, s, clk)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.setKeys(k1, k2)

	// Within a minute of the last fetch, an unknown kid does not refetch.
	clk.Advance(30 * time.Second)
	if _, ok := c.Lookup(t.Context(), "k2"); ok || s.fetches.Load() != 1 {
		t.Fatalf("k2 found early, or refetched: fetches=%d", s.fetches.Load())
	}
	// A minute after it, the unknown kid refetches and is found.
	clk.Advance(30 * time.Second)
	if _, ok := c.Lookup(t.Context(), "k2"); !ok {
		t.Fatal("new kid not picked up")
	}
	if n := s.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}

	// The IdP drops k1; after max-age (600s) the next use refreshes.
	s.setKeys(k2)
	clk.Advance(9 * time.Minute)
	if _, ok := c.Lookup(t.Context(), "k1"); !ok {
		t.Fatal("k1 dropped before the set was due")
	}
	clk.Advance(time.Minute + time.Second)
	c.Keys() // due: starts the refresh
	c.settle()
	if n := s.fetches.Load(); n != 3 {
		t.Fatalf("fetches = %d, want 3", n)
	}
	if _, ok := c.Lookup(t.Context(), "k1"); ok {
		t.Fatal("removed key still served")
	}
	if got := strings.Join(kids(c.Keys()), " "); got != "k2/ES256" {
		t.Fatalf("keys = %s", got)
	}
}

// An outage (error status, garbage, oversize body, timeout) keeps the last
// good set and is reported; the next success replaces it.
func TestOutageKeepsLastGoodSet(t *testing.T) {
	k1, _ := ecJWK(t, "k1")
	for _, tc := range []struct {
		name   string
		break_ func(s *idp)
		want   string
	}{
		{"500", func(s *idp) { s.set(func() { s.status = 500 }) }, "status 500"},
		{"not json", func(s *idp) { s.set(func() { s.body = "<html>down</html>" }) }, "not a JSON object"},
		{"no keys member", func(s *idp) { s.set(func() { s.body = `{"kys":[]}` }) }, `no "keys" array`},
		{"oversize", func(s *idp) {
			s.set(func() { s.body = `{"keys":[],"pad":"` + strings.Repeat("x", DefaultMaxBytes) + `"}` })
		}, "limit"},
		{"timeout", func(s *idp) { s.set(func() { s.block = make(chan struct{}) }) }, "deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := testsupport.NewClock(t0)
			s := newIdP(t, k1)
			c, errs := newCache(t, s, clk, func(o *Options) { o.Timeout = 200 * time.Millisecond })
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			tc.break_(s)
			clk.Advance(11 * time.Minute)
			c.Keys()
			c.settle()
			if _, ok := c.Lookup(t.Context(), "k1"); !ok {
				t.Fatal("last good key lost in an outage")
			}
			if len(*errs) == 0 || !strings.Contains((*errs)[0].Error(), tc.want) || !strings.Contains((*errs)[0].Error(), "keeping the last good set of 1 key(s)") {
				t.Fatalf("reported %v, want %q", *errs, tc.want)
			}
			// A failure is retried a minute later, not before.
			if next := c.NextRefresh(); !next.Equal(clk.Now().Add(MinInterval)) {
				t.Fatalf("next refresh %s, want now+1m", next.Sub(clk.Now()))
			}
			s.set(func() {
				if s.block != nil {
					close(s.block)
				}
				s.block, s.status = nil, 200
			})
			k2, _ := ecJWK(t, "k2")
			s.setKeys(k2)
			clk.Advance(MinInterval)
			if _, ok := c.Lookup(t.Context(), "k2"); !ok {
				t.Fatal("recovery not picked up")
			}
		})
	}
}

// However many unknown kids arrive, the endpoint sees at most one fetch
// per minute; Keys on a fresh set never fetches.
func TestRefreshRateBounded(t *testing.T) {
	clk := testsupport.NewClock(t0)
	k1, _ := ecJWK(t, "k1")
	s := newIdP(t, k1)
	c, _ := newCache(t, s, clk)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			c.Lookup(t.Context(), "made-up-"+string(rune('a'+i%26)))
			c.Keys()
		})
	}
	wg.Wait()
	if n := s.fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d after 200 unknown kids within the first minute, want 1 (the start)", n)
	}
	for minute := 1; minute <= 10; minute++ {
		clk.Advance(MinInterval)
		for range 50 {
			c.Lookup(t.Context(), "https://evil.example/jwks.json")
		}
		if n := s.fetches.Load(); n != int32(1+minute) {
			t.Fatalf("after %d minutes: fetches = %d, want %d", minute, n, 1+minute)
		}
	}
	if n := c.Fetches(); n != 11 {
		t.Fatalf("Fetches() = %d", n)
	}
}

// Concurrent lookups of a kid that is new at the IdP all wait for the one
// fetch it triggers, and all find the key.
func TestConcurrentUnknownKidShareOneFetch(t *testing.T) {
	clk := testsupport.NewClock(t0)
	k1, _ := ecJWK(t, "k1")
	k2, _ := ecJWK(t, "k2")
	s := newIdP(t, k1)
	c, _ := newCache(t, s, clk)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.setKeys(k1, k2)
	clk.Advance(MinInterval)
	var found atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, ok := c.Lookup(t.Context(), "k2"); ok {
				found.Add(1)
			}
		})
	}
	wg.Wait()
	if found.Load() != 20 || s.fetches.Load() != 2 {
		t.Fatalf("found %d/20 with %d fetches", found.Load(), s.fetches.Load())
	}
}

func TestCacheControlClamped(t *testing.T) {
	for _, tc := range []struct {
		cc   string
		want time.Duration
	}{
		{"max-age=1", MinRefresh},
		{"public, max-age=3600", time.Hour},
		{"max-age=999999999", MaxRefresh},
		{"", DefaultRefresh},
		{"no-store", MinRefresh},
		{"max-age=600, no-cache", MinRefresh},
		{"max-age=bogus", DefaultRefresh},
	} {
		h := http.Header{}
		if tc.cc != "" {
			h.Set("Cache-Control", tc.cc)
		}
		if got := maxAge(h); got != tc.want {
			t.Errorf("Cache-Control %q: refresh after %s, want %s", tc.cc, got, tc.want)
		}
	}
	// And end to end: the cache schedules by it.
	clk := testsupport.NewClock(t0)
	k1, _ := ecJWK(t, "k1")
	s := newIdP(t, k1)
	s.set(func() { s.cc = "max-age=30" })
	c, _ := newCache(t, s, clk)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if next := c.NextRefresh(); !next.Equal(t0.Add(MinRefresh)) {
		t.Fatalf("next refresh at +%s, want +5m", next.Sub(t0))
	}
	clk.Advance(4 * time.Minute)
	c.Keys()
	c.settle()
	if s.fetches.Load() != 1 {
		t.Fatal("refreshed before 5 minutes")
	}
}

// Each key is admitted with exactly one algorithm from the allowlist, or
// refused with a reason; the rest of the set is still used.
func TestKeysRefusedWithoutSingleAlgorithm(t *testing.T) {
	good, _ := ecJWK(t, "good")
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384raw, _ := p384.PublicKey.Bytes()
	ecWrongAlg, _ := ecJWK(t, "ec-rs")
	ecWrongAlg["alg"] = "RS256"
	ecPriv, _ := ecJWK(t, "ec-d")
	ecPriv["d"] = "AAAA"
	offCurve, _ := ecJWK(t, "off-curve")
	offCurve["y"] = enc64(make([]byte, 32))
	edWrongAlg := edJWK(t, "ed-es")
	edWrongAlg["alg"] = "ES256"
	enc, _ := ecJWK(t, "enc")
	enc["use"] = "enc"
	ops, _ := ecJWK(t, "ops")
	ops["key_ops"] = []string{"encrypt"}
	dup1, _ := ecJWK(t, "dup")
	dup2, _ := ecJWK(t, "dup")
	keys := []map[string]any{
		good,
		{"kty": "oct", "kid": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", "alg": "HS256"},
		rsaJWK(t, "rsa-no-alg", 2048, ""),
		rsaJWK(t, "rsa-384", 2048, "RS384"),
		rsaJWK(t, "rsa-ps", 2048, "PS256"),
		rsaJWK(t, "rsa-1024", 1024, "RS256"),
		{"kty": "EC", "crv": "P-384", "kid": "p384", "x": enc64(p384raw[1:49]), "y": enc64(p384raw[49:])},
		ecWrongAlg, ecPriv, offCurve, edWrongAlg,
		{"kty": "OKP", "crv": "X25519", "kid": "x25519", "x": enc64(make([]byte, 32))},
		{"kid": "no-kty"},
		enc, ops, dup1, dup2,
	}
	s := newIdP(t, keys...)
	c, errs := newCache(t, s, testsupport.NewClock(t0))
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(kids(c.Keys()), " "); got != "good/ES256" {
		t.Fatalf("admitted %s, want only good/ES256", got)
	}
	all := errors.Join(*errs...).Error()
	for _, want := range []string{
		`(kid "oct"): symmetric key (kty oct) refused`,
		`(kid "rsa-no-alg"): RSA key without alg`,
		`(kid "rsa-384"): alg "RS384" is not accepted for RSA`,
		`(kid "rsa-ps"): alg "PS256" is not accepted`,
		`(kid "rsa-1024"): RSA key is 1024 bits`,
		`(kid "p384"): EC curve "P-384" is not accepted`,
		`(kid "ec-rs"): alg "RS256" does not fit a P-256 key`,
		`(kid "ec-d"): holds private key material`,
		`(kid "off-curve"): EC key: the point is not on P-256`,
		`(kid "ed-es"): alg "ES256" is not accepted for Ed25519`,
		`(kid "x25519"): OKP curve "X25519" is not accepted`,
		`(kid "no-kty"): no kty`,
		`kid "dup" appears 2 times`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no refusal %q in:\n%s", want, all)
		}
	}
	for _, silent := range []string{`"enc"`, `"ops"`} {
		if strings.Contains(all, silent) {
			t.Errorf("non-signing key %s reported as an error", silent)
		}
	}
	if strings.Contains(all, "c2VjcmV0") {
		t.Error("an oct key's value appears in an error")
	}
}

func TestDocumentBounds(t *testing.T) {
	many := make([]map[string]any, MaxKeys+1)
	for i := range many {
		many[i] = map[string]any{"kty": "oct"}
	}
	b, _ := json.Marshal(map[string]any{"keys": many})
	if _, _, err := Parse(b); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("Parse(101 keys) = %v", err)
	}
	// A small MaxBytes applies to the body, whatever Content-Length says.
	clk := testsupport.NewClock(t0)
	k1, _ := ecJWK(t, "k1")
	s := newIdP(t, k1)
	c, errs := newCache(t, s, clk, func(o *Options) { o.MaxBytes = 64 })
	if err := c.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "64") {
		t.Fatalf("Start with a 64-byte bound = %v", err)
	}
	if len(c.Keys()) != 0 || len(*errs) != 1 {
		t.Fatalf("keys %d, errs %v", len(c.Keys()), *errs)
	}
}

func TestURLRules(t *testing.T) {
	for _, u := range []string{"ftp://idp.test/jwks", "http://idp.example/jwks", "https://user:pw@idp.test/jwks", "/jwks", ""} {
		if _, err := New(Options{URL: u}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	for _, u := range []string{"https://idp.example/.well-known/jwks.json", "http://127.0.0.1:8080/jwks", "http://localhost/jwks"} {
		if _, err := New(Options{URL: u}); err != nil {
			t.Errorf("New(%q): %v", u, err)
		}
	}
	// Redirects are not followed by the default client.
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("redirect followed") }))
	defer target.Close()
	redir := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	defer redir.Close()
	c, err := New(Options{URL: redir.URL})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "redirects are not followed") {
		t.Fatalf("Start via redirect = %v", err)
	}
}

// Only the configured URL is ever fetched, whatever kid is asked for.
func TestOnlyConfiguredURLFetched(t *testing.T) {
	var other atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { other.Add(1) }))
	defer evil.Close()
	clk := testsupport.NewClock(t0)
	k1, _ := ecJWK(t, "k1")
	s := newIdP(t, k1)
	var paths []string
	var mu sync.Mutex
	inner := s.Config.Handler
	s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.String())
		mu.Unlock()
		inner.ServeHTTP(w, r)
	})
	c, _ := newCache(t, s, clk)
	_ = c.Start(context.Background())
	clk.Advance(MinInterval)
	c.Lookup(t.Context(), evil.URL+"/jwks.json")
	if other.Load() != 0 {
		t.Fatal("a URL named as kid was fetched")
	}
	for _, p := range paths {
		if p != "/.well-known/jwks.json" {
			t.Fatalf("fetched %q", p)
		}
	}
	if len(paths) != 2 {
		t.Fatalf("fetches: %v", paths)
	}
}

// A JWKS URL's query may hold a credential (?access_token=…): a failed
// fetch is reported without it, also when the failure is the transport's,
// whose *url.Error repeats the whole URL.
func TestFetchErrorHidesQuery(t *testing.T) {
	const secret = "S3CR3T-FROM-ENV"
	k1, _ := ecJWK(t, "k1")
	for _, tc := range []struct {
		name   string
		break_ func(s *idp)
	}{
		{"status", func(s *idp) { s.set(func() { s.status = 500 }) }},
		{"transport", func(s *idp) { s.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newIdP(t, k1)
			tc.break_(s)
			c, errs := newCache(t, s, testsupport.NewClock(t0), func(o *Options) { o.URL += "?access_token=" + secret })
			_ = c.Start(context.Background())
			c.settle()
			if len(*errs) == 0 {
				t.Fatal("no failure reported")
			}
			msg := (*errs)[0].Error()
			if strings.Contains(msg, secret) || !strings.Contains(msg, "/.well-known/jwks.json?…") {
				t.Fatalf("reported %q: want the URL without its query", msg)
			}
		})
	}
}
