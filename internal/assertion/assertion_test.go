package assertion_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/assertion"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/testsupport"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func sess(id string) *session.Session {
	return &session.Session{ID: id, Tenant: "acme", Subject: "jane@acme.test",
		IssuedAt: t0.Add(-time.Minute), LastSeen: t0, ExpiresAt: t0.Add(8 * time.Hour)}
}

// request is a TLS request for host that arrived on the listener port of
// host's port (443 when it names none), as Caddy's server would say it.
func request(host string) *http.Request {
	port := 443
	if _, p, err := net.SplitHostPort(host); err == nil {
		port, _ = strconv.Atoi(p)
	}
	return arrivedOn(&http.Request{Method: http.MethodGet, Host: host, TLS: &tls.ConnectionState{}, Header: http.Header{}}, port)
}

// arrivedOn is r with the listener port the server puts in its context.
func arrivedOn(r *http.Request, port int) *http.Request {
	return r.WithContext(context.WithValue(context.Background(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}))
}

func newIssuer(t *testing.T, cfg assertion.Config) *assertion.Issuer {
	t.Helper()
	i, err := assertion.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// issue signs one assertion with r's signing key.
func issue(t *testing.T, r *assertion.Ring) string {
	t.Helper()
	tok, err := newIssuer(t, assertion.Config{Keys: r, Now: func() time.Time { return t0 }}).For(request("portal.test"), sess("s1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func part(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func headerOf(t *testing.T, tok string) map[string]any { return part(t, tok, 0) }

// verify checks tok's signature with pub and returns its claims.
func verify(t *testing.T, tok string, pub any) jwt.MapClaims {
	t.Helper()
	c := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, c, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256", "EdDSA"}), jwt.WithTimeFunc(func() time.Time { return t0 }))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return c
}

// The claims are exactly iss, aud, sub, tenant, iat, exp and the forwarded
// claims nested at their paths (without unforwarded siblings); the header
// is alg, kid, typ.
func TestIssuerClaimsExactly(t *testing.T) {
	key := newEC(t)
	r := ring(t, assertion.Key{Signer: key, KID: "k1"})
	i := newIssuer(t, assertion.Config{Keys: r, Now: func() time.Time { return t0.Add(300 * time.Millisecond) },
		Claims: []string{"org.id", "org.plan", "groups", "https://example.com/roles", "team", "team.name", "missing.x"}})
	kept := map[string]any{
		"org.id": "org-7", "org.plan": json.Number("3"), "groups": []any{"a", "b"},
		"https://example.com/roles": []any{"admin"},
		"team":                      map[string]any{"name": "red", "size": json.Number("4")}, "team.name": "red",
		"scope": "read", // kept for a require rule, not forwarded: not in the token
	}
	tok, err := i.For(request("portal.test:8443"), sess("s1"), kept)
	if err != nil {
		t.Fatal(err)
	}
	if h := headerOf(t, tok); !reflect.DeepEqual(h, map[string]any{"alg": "ES256", "kid": "k1", "typ": "JWT"}) {
		t.Errorf("header = %v", h)
	}
	got := map[string]any(verify(t, tok, &key.PublicKey))
	want := map[string]any{
		"iss": "https://portal.test:8443", "aud": "https://portal.test:8443",
		"sub": "jane@acme.test", "tenant": "acme",
		"iat": float64(t0.Unix()), "exp": float64(t0.Add(assertion.DefaultTTL).Unix()),
		"org":                       map[string]any{"id": "org-7", "plan": float64(3)},
		"groups":                    []any{"a", "b"},
		"https://example.com/roles": []any{"admin"},
		"team":                      map[string]any{"name": "red", "size": float64(4)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("claims\n got %v\nwant %v", got, want)
	}
}

// iss is the origin as a browser writes it: default port dropped, http
// without TLS; aud is the configured audience when set; Ed25519 signs EdDSA.
func TestIssuerOriginAudienceEdDSA(t *testing.T) {
	_, ed := mustEd(t)
	i := newIssuer(t, assertion.Config{Keys: ring(t, assertion.Key{Signer: ed}), Audience: "billing-app", Now: func() time.Time { return t0 }})
	r := request("Portal.Test:443")
	tok, err := i.For(r, sess("s1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := verify(t, tok, ed.Public())
	if c["iss"] != "https://portal.test" || c["aud"] != "billing-app" || headerOf(t, tok)["alg"] != "EdDSA" {
		t.Errorf("claims %v header %v", c, headerOf(t, tok))
	}
	plain := arrivedOn(&http.Request{Host: "localhost:9181", Header: http.Header{}}, 9181)
	tok, _ = i.For(plain, sess("s2"), nil)
	if c := verify(t, tok, ed.Public()); c["iss"] != "http://localhost:9181" {
		t.Errorf("plain http iss = %v", c["iss"])
	}
}

// TestIssuerOriginIgnoresHostPort is the attack of a session holder who
// sends "Host: portal.test:8443" on a connection to :443 (Caddy's host
// matcher ignores the port, and the session cookie is bound to the host
// name alone): the assertion must not vouch for https://portal.test:8443,
// another site whose app may trust the same key (a generated key is shared
// by every handler on the same storage). Its iss and aud name the port the
// listener has, whatever Host says; with no listener port, none.
func TestIssuerOriginIgnoresHostPort(t *testing.T) {
	key := newEC(t)
	for _, tc := range []struct {
		name string
		r    *http.Request
		want string
	}{
		{"forged port on :443", arrivedOn(request("portal.test:8443"), 443), "https://portal.test"},
		{"no port on :8443", arrivedOn(request("portal.test"), 8443), "https://portal.test:8443"},
		{"another port on :8443", arrivedOn(request("portal.test:9443"), 8443), "https://portal.test:8443"},
		{"IPv6 literal", arrivedOn(request("[::1]:8443"), 443), "https://[::1]"},
		{"no listener port", &http.Request{Host: "portal.test:8443", TLS: &tls.ConnectionState{}, Header: http.Header{}}, "https://portal.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := newIssuer(t, assertion.Config{Keys: ring(t, assertion.Key{Signer: key}), Now: func() time.Time { return t0 }})
			tok, err := i.For(tc.r, sess("s1"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if c := verify(t, tok, &key.PublicKey); c["iss"] != tc.want || c["aud"] != tc.want {
				t.Errorf("Host %q: iss %v, aud %v; want %s", tc.r.Host, c["iss"], c["aud"], tc.want)
			}
		})
	}
}

// countingKeys counts signatures: Ring is called once per sign.
type countingKeys struct {
	ring *assertion.Ring
	n    atomic.Int32
}

func (c *countingKeys) Ring() (*assertion.Ring, error) { c.n.Add(1); return c.ring, nil }

// TestIssuerOneSignaturePerOrigin: spellings of one origin (case, an
// explicit default port, a Host port the origin does not take, a trailing
// dot) reuse one
// assertion, so a session holder cannot make every request sign; another
// listener port is another origin and is signed again.
func TestIssuerOneSignaturePerOrigin(t *testing.T) {
	ec := newEC(t)
	keys := &countingKeys{ring: ring(t, assertion.Key{Signer: ec, KID: "k1"})}
	i := newIssuer(t, assertion.Config{Keys: keys, Now: func() time.Time { return t0 }})
	// The trailing dot too: the session's host binding drops it, and a
	// session holder alternating spellings made every request sign again
	// (and had the gateway vouch for "https://portal.test.").
	hosts := []string{"portal.test", "PORTAL.test", "portal.test:443", "portal.test:8443", "portal.test."}
	for n := range 40 {
		tok, err := i.For(arrivedOn(request(hosts[n%len(hosts)]), 443), sess("s1"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if c := verify(t, tok, &ec.PublicKey); c["iss"] != "https://portal.test" {
			t.Fatalf("Host %q: iss %v, want https://portal.test", hosts[n%len(hosts)], c["iss"])
		}
	}
	if got := keys.n.Load(); got != 1 {
		t.Fatalf("40 requests of one session at one origin signed %d assertions, want 1", got)
	}
	if _, err := i.For(arrivedOn(request("portal.test"), 8443), sess("s1"), nil); err != nil {
		t.Fatal(err)
	}
	if got := keys.n.Load(); got != 2 {
		t.Fatalf("a request on another listener port signed %d assertions in all, want 2", got)
	}
}

// exp is iat+ttl, but never after the session's expiry, nor after
// IssuedAt+SessionTTL.
func TestIssuerExpCappedBySession(t *testing.T) {
	key := newEC(t)
	i := newIssuer(t, assertion.Config{Keys: ring(t, assertion.Key{Signer: key}), TTL: 10 * time.Minute, SessionTTL: 2 * time.Minute,
		Now: func() time.Time { return t0 }})
	s := sess("s1")
	s.ExpiresAt = t0.Add(3 * time.Minute)
	tok, _ := i.For(request("portal.test"), s, nil)
	if c := verify(t, tok, &key.PublicKey); c["exp"] != float64(s.IssuedAt.Add(2*time.Minute).Unix()) {
		t.Errorf("exp = %v, want IssuedAt+SessionTTL", c["exp"])
	}
	i = newIssuer(t, assertion.Config{Keys: ring(t, assertion.Key{Signer: key}), TTL: 10 * time.Minute, Now: func() time.Time { return t0 }})
	tok, _ = i.For(request("portal.test"), s, nil)
	if c := verify(t, tok, &key.PublicKey); c["exp"] != float64(s.ExpiresAt.Unix()) {
		t.Errorf("exp = %v, want the session's expiry", c["exp"])
	}
}

// Cache: the same session gets the same token (ES256 signatures are
// randomized, so equal tokens mean one signature) until TTL/2 after iat,
// then a new one; another host or session gets its own.
func TestIssuerCacheReuseAndExpiry(t *testing.T) {
	clk := testsupport.NewClock(t0) // tests move it, they never sleep
	i := newIssuer(t, assertion.Config{Keys: ring(t, assertion.Key{Signer: newEC(t)}), TTL: 4 * time.Minute, Now: clk.Now})
	r, s := request("portal.test"), sess("s1")
	first, _ := i.For(r, s, nil)
	clk.Advance(2*time.Minute - time.Second)
	if again, _ := i.For(r, s, nil); again != first {
		t.Fatal("re-signed before TTL/2")
	}
	if other, _ := i.For(request("other.test"), s, nil); other == first {
		t.Fatal("the assertion of one host was reused on another")
	}
	if other, _ := i.For(r, sess("s2"), nil); other == first {
		t.Fatal("one session's assertion reused for another")
	}
	clk.Advance(time.Second)
	later, _ := i.For(r, s, nil)
	if later == first {
		t.Fatal("reused at TTL/2")
	}
	if part(t, later, 1)["iat"] != float64(t0.Add(2*time.Minute).Unix()) {
		t.Fatalf("new iat = %v", part(t, later, 1)["iat"])
	}
}

// Bound: with room for 8, signing for 100 sessions keeps at most 8; the
// most recent ones are still reused, the oldest are signed again.
func TestIssuerCacheBound(t *testing.T) {
	i := newIssuer(t, assertion.Config{Keys: ring(t, assertion.Key{Signer: newEC(t)}), CacheSize: 8, Now: func() time.Time { return t0 }})
	r := request("portal.test")
	toks := map[string]string{}
	for n := range 100 {
		id := "s" + string(rune('A'+n/26)) + string(rune('a'+n%26))
		toks[id], _ = i.For(r, sess(id), nil)
		if got := assertion.CacheLen(i); got > 8 {
			t.Fatalf("cache holds %d entries, bound 8", got)
		}
	}
	last := "s" + string(rune('A'+99/26)) + string(rune('a'+99%26))
	if tok, _ := i.For(r, sess(last), nil); tok != toks[last] {
		t.Error("the most recent session was evicted")
	}
	if tok, _ := i.For(r, sess("sAa"), nil); tok == toks["sAa"] {
		t.Error("the oldest session is still cached past the bound")
	}
}

// Concurrent first requests of one session share one signature.
func TestIssuerConcurrentFirstRequests(t *testing.T) {
	i := newIssuer(t, assertion.Config{Keys: ring(t, assertion.Key{Signer: newEC(t)}), Now: func() time.Time { return t0 }})
	var wg sync.WaitGroup
	toks := make([]string, 32)
	for n := range toks {
		wg.Go(func() { toks[n], _ = i.For(request("portal.test"), sess("s1"), nil) })
	}
	wg.Wait()
	for _, tok := range toks {
		if tok != toks[0] || tok == "" {
			t.Fatal("concurrent first requests signed more than once")
		}
	}
}

type failingKeys struct{ calls int }

func (f *failingKeys) Ring() (*assertion.Ring, error) {
	f.calls++
	return nil, errors.New("storage down")
}

// A key that cannot be loaded is store_unavailable, and is not cached: the
// next request tries again.
func TestIssuerKeyFailure(t *testing.T) {
	f := &failingKeys{}
	i := newIssuer(t, assertion.Config{Keys: f, Now: func() time.Time { return t0 }})
	for range 2 {
		if _, err := i.For(request("portal.test"), sess("s1"), nil); reason.Of(err) != reason.StoreUnavailable {
			t.Fatalf("err = %v", err)
		}
	}
	if f.calls != 2 {
		t.Fatalf("key source called %d times, want 2 (failures are not cached)", f.calls)
	}
	if _, err := i.JWKS(); err == nil {
		t.Fatal("JWKS without a key")
	}
}

func TestNewRefusals(t *testing.T) {
	r := ring(t, assertion.Key{Signer: newEC(t)})
	for name, cfg := range map[string]assertion.Config{
		"ttl too long":  {Keys: r, TTL: 2 * time.Hour},
		"ttl too short": {Keys: r, TTL: time.Second},
		"no keys":       {},
		"own claim":     {Keys: r, Claims: []string{"exp"}},
		"own nested":    {Keys: r, Claims: []string{"iss.x"}},
		"audience ctl":  {Keys: r, Audience: "a\nb"},
	} {
		if _, err := assertion.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if i := newIssuer(t, assertion.Config{Keys: r, Header: "x-app-identity"}); i.Header() != "X-App-Identity" {
		t.Errorf("header = %q", i.Header())
	}
}

// BenchmarkSign is one cache miss: claims, ES256 signature, cache entry.
// A session pays it once per TTL/2.
func BenchmarkSign(b *testing.B) {
	k, _, err := assertion.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	r, err := assertion.NewRing([]assertion.Key{k})
	if err != nil {
		b.Fatal(err)
	}
	i, err := assertion.New(assertion.Config{Keys: r, Claims: []string{"org.id"}, Now: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	req := request("portal.test")
	s := sess("")
	kept := map[string]any{"org.id": "org-7"}
	b.ReportAllocs()
	for n := 0; b.Loop(); n++ {
		s.ID = "s" + strconv.Itoa(n)
		if _, err := i.For(req, s, kept); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForCached is the per-request cost with assertion on: a cache
// hit (clock, shard lock, map lookup), what the session path adds.
func BenchmarkForCached(b *testing.B) {
	k, _, err := assertion.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	r, err := assertion.NewRing([]assertion.Key{k})
	if err != nil {
		b.Fatal(err)
	}
	i, err := assertion.New(assertion.Config{Keys: r, Now: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	req, s := request("portal.test"), sess("s1")
	if _, err := i.For(req, s, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := i.For(req, s, nil); err != nil {
			b.Fatal(err)
		}
	}
}
