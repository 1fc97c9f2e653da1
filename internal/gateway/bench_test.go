package gateway_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/testsupport"
	"github.com/embedgate/embedgate/internal/token"
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

// tenantCounts are the registry sizes every scaling benchmark runs at: the
// per-request and exchange cost at 10,000 tenants must stay within 10% of
// the cost at 1.
var tenantCounts = []int{1, 10000}

// benchGateway is one gateway over a registry of n tenants, built the way
// the adapter builds it (tenant.NewRegistry), with no-op audit and metrics
// hooks so that only the gateway's own work is measured. The tenant used is
// the one in the middle of the registry, reached on its own mapped host.
type benchGateway struct {
	gw     *gateway.Gateway
	id     string // the tenant used
	host   string // its mapped host; requests go there
	self   string // https://host
	framer string // its frame_ancestors origin
	secret []byte
	ec     *ecdsa.PrivateKey
	now    time.Time
	extra  map[string]any // claims the tokens carry beyond the standard ones
}

var (
	benchRegistriesMu sync.Mutex
	benchRegistries   = map[int]*tenant.Registry{}
	benchEC           = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

// benchTenant is tenant i of a benchmark registry; the one in the middle
// also has an ES256 key.
func benchTenant(i int) tenant.Config {
	return tenant.Config{
		ID:             fmt.Sprintf("tenant-%d", i),
		Keys:           []tenant.SecretConfig{{Secret: fmt.Sprintf("bench-secret-%06d-0123456789abcdef0123", i)}},
		FrameAncestors: []string{fmt.Sprintf("https://app-%d.customer.test", i)},
		Hosts:          []string{fmt.Sprintf("t%d.gate.test", i)},
		LoginURL:       fmt.Sprintf("https://app-%d.customer.test/login", i),
	}
}

// benchRegistry builds the registry of n tenants once per test binary:
// b.Run calls a sub-benchmark's function several times while it sizes b.N.
func benchRegistry(b *testing.B, n int) *tenant.Registry {
	b.Helper()
	benchRegistriesMu.Lock()
	defer benchRegistriesMu.Unlock()
	if reg := benchRegistries[n]; reg != nil {
		return reg
	}
	der, err := x509.MarshalPKIXPublicKey(&benchEC().PublicKey)
	if err != nil {
		b.Fatal(err)
	}
	cfgs := make([]tenant.Config, n)
	for i := range cfgs {
		cfgs[i] = benchTenant(i)
	}
	cfgs[n/2].PublicKeys = []tenant.PublicKeyConfig{{PEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}}
	reg, err := tenant.NewRegistry(cfgs)
	if err != nil {
		b.Fatal(err)
	}
	benchRegistries[n] = reg
	return reg
}

// newBenchGateway returns a gateway, with an empty memory replay store,
// over the registry of n tenants; opts change its config (variants).
func newBenchGateway(b *testing.B, n int, opts ...func(*gateway.Config)) *benchGateway {
	b.Helper()
	reg := benchRegistry(b, n)
	cfg := benchTenant(n / 2)
	g := &benchGateway{
		id:     cfg.ID,
		host:   cfg.Hosts[0],
		self:   "https://" + cfg.Hosts[0],
		framer: cfg.FrameAncestors[0],
		secret: []byte(cfg.Keys[0].Secret),
		ec:     benchEC(),
		now:    t0,
	}
	clock := func() time.Time { return g.now }
	mem := replay.NewMemory(clock)
	b.Cleanup(mem.Close)
	sealer, err := session.NewSealer(cookieName, [][]byte{[]byte(sealSecret)})
	if err != nil {
		b.Fatal(err)
	}
	gcfg := gateway.Config{
		Tenants:     func() *tenant.Registry { return reg },
		Sealer:      sealer,
		Replay:      mem,
		Revocations: mem,
		SessionTTL:  sessionTTL,
		IdleTimeout: idle,
		MaxTokenAge: 120 * time.Second,
		Leeway:      30 * time.Second,
		CookieName:  cookieName,
		Prefix:      "/.embed",
		TokenParam:  "embed_token",
		Now:         clock,
	}
	for _, o := range opts {
		o(&gcfg)
	}
	if len(gcfg.ForwardClaims) > 0 {
		g.extra = benchExtraClaims
	}
	if g.gw, err = gateway.New(gcfg); err != nil {
		b.Fatal(err)
	}
	return g
}

// mint signs a fresh token for the benchmark tenant with alg (HS256 or
// ES256): the claims a customer's backend sends, a new jti each time.
func (g *benchGateway) mint(b *testing.B, alg string) string {
	key := any(g.secret)
	if alg == tenant.ES256 {
		key = g.ec
	}
	claims := testsupport.Claims(g.id, subject, g.now)
	maps.Copy(claims, g.extra)
	return testsupport.Mint(b, token.Signer{Alg: alg, Key: key}, claims)
}

// benchExtraClaims are what a customer's token typically adds: who, and a
// role the app or a require rule reads.
var benchExtraClaims = map[string]any{"email": "jane@acme.test", "role": "agent", "groups": []any{"sales", "emea"}}

// withBenchClaims keeps claims in the session, as a typical config does: a
// forwarded e-mail and groups, and a require rule on the role.
func withBenchClaims(c *gateway.Config) {
	c.ForwardClaims = []gateway.ForwardClaim{{Claim: "email", Header: "X-Embed-Email"}, {Claim: "groups", Header: "X-Embed-Groups"}}
	c.Require = []gateway.Requirement{{Claim: "role", Value: "agent"}}
}

// BenchmarkSessionPathClaims is BenchmarkSessionPath with claims kept in
// the session (withBenchClaims): the cost of reading and forwarding them
// on every request.
func BenchmarkSessionPathClaims(b *testing.B) {
	benchmarkSessionPath(b, 1, withBenchClaims)
}

// exchangeRequest is the start page's exchange: a same-origin JSON POST
// carrying the token and the parent origin it saw.
func (g *benchGateway) exchangeRequest(tok string) *http.Request {
	body := `{"token":"` + tok + `","parent_origin":"` + g.framer + `"}`
	return &http.Request{
		Method: http.MethodPost, URL: &url.URL{Scheme: "https", Host: g.host, Path: "/.embed/exchange"},
		Host: g.host, TLS: &tls.ConnectionState{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
		Header: http.Header{
			"Content-Type":   {"application/json"},
			"Origin":         {g.self},
			"Sec-Fetch-Site": {"same-origin"},
			"Sec-Fetch-Mode": {"cors"},
			"Sec-Fetch-Dest": {"empty"},
		},
	}
}

// login runs one exchange and returns the session cookie value.
func (g *benchGateway) login(b *testing.B) string {
	w := &benchWriter{h: http.Header{}}
	if err := g.gw.ServeHTTP(w, g.exchangeRequest(g.mint(b, tenant.HS256)), benchNext); err != nil || w.code != http.StatusNoContent {
		b.Fatalf("login: status %d: %v %v", w.code, err, w.h)
	}
	for _, line := range w.h["Set-Cookie"] {
		if m := sessionCookieRE.FindStringSubmatch(line); m != nil {
			return m[1]
		}
	}
	b.Fatalf("login: no session cookie in %v", w.h)
	return ""
}

// BenchmarkSessionPath is the per-request cost for a valid cookie that needs
// no refresh: open, checks, header rewrite, framing, next; at 1 and 10,000
// tenants.
func BenchmarkSessionPath(b *testing.B) {
	for _, n := range tenantCounts {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) { benchmarkSessionPath(b, n) })
	}
}

func benchmarkSessionPath(b *testing.B, n int, opts ...func(*gateway.Config)) {
	g := newBenchGateway(b, n, opts...)
	v := g.login(b)
	cookie := []string{"theme=dark; " + cookieName + "=" + v + "; lang=en"}
	r := &http.Request{
		Method: http.MethodGet, URL: &url.URL{Scheme: "https", Host: g.host, Path: "/deals/7", RawQuery: "tab=notes"},
		Host: g.host, TLS: &tls.ConnectionState{}, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}
	w := &benchWriter{h: http.Header{}}
	// Warm-up and sanity check: next is reached with the identity headers,
	// the response is framed for the tenant, and the cookie is not refreshed.
	var seen http.Header
	r.Header["Cookie"] = cookie
	err := g.gw.ServeHTTP(w, r, func(w http.ResponseWriter, r *http.Request) error {
		seen = r.Header.Clone()
		return benchNext(w, r)
	})
	if err != nil || w.code != http.StatusOK || len(w.h["Set-Cookie"]) != 0 ||
		seen.Get(gateway.HeaderTenant) != g.id || seen.Get(gateway.HeaderSubject) != subject ||
		w.h.Get("Content-Security-Policy") != "frame-ancestors "+g.framer {
		b.Fatalf("warm-up: %v %d %v upstream %v", err, w.code, w.h, seen)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range r.Header {
			delete(r.Header, k)
		}
		r.Header["Cookie"] = cookie
		w.reset()
		if err := g.gw.ServeHTTP(w, r, benchNext); err != nil || w.code != http.StatusOK {
			b.Fatalf("status %d: %v", w.code, err)
		}
	}
}

// BenchmarkExchangeHS256 is one exchange of a fresh HS256 token as the start
// page sends it (JSON body): verify, origin checks, seal, jti claim, cookie;
// at 1 and 10,000 tenants.
func BenchmarkExchangeHS256(b *testing.B) {
	for _, n := range tenantCounts {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) { benchmarkExchange(b, n, tenant.HS256) })
	}
}

// BenchmarkExchangeES256 is the same exchange with an ES256 token.
func BenchmarkExchangeES256(b *testing.B) {
	for _, n := range tenantCounts {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) { benchmarkExchange(b, n, tenant.ES256) })
	}
}

// benchmarkExchange prepares tokens and requests in batches outside the
// timer (signing is the customer's cost, not the gateway's).
func benchmarkExchange(b *testing.B, n int, alg string) {
	g := newBenchGateway(b, n)
	const batch = 512
	reqs := make([]*http.Request, 0, batch)
	prepare := func() {
		reqs = reqs[:0]
		for j := 0; j < batch; j++ {
			reqs = append(reqs, g.exchangeRequest(g.mint(b, alg)))
		}
	}
	w := &benchWriter{h: http.Header{}}
	// Sanity check: a 204 with a session cookie.
	prepare()
	if err := g.gw.ServeHTTP(w, reqs[0], benchNext); err != nil || w.code != http.StatusNoContent ||
		len(w.h["Set-Cookie"]) != 1 || !sessionCookieRE.MatchString(w.h["Set-Cookie"][0]) {
		b.Fatalf("warm-up: status %d: %v %v", w.code, err, w.h)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%batch == 0 {
			b.StopTimer()
			prepare()
			b.StartTimer()
		}
		w.reset()
		if err := g.gw.ServeHTTP(w, reqs[i%batch], benchNext); err != nil || w.code != http.StatusNoContent {
			b.Fatalf("exchange %d: status %d: %v %v", i, w.code, err, w.h)
		}
	}
}
