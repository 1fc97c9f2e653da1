package gateway_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/testsupport"
)

// t0 is where every fake clock starts: nothing in these tests sleeps or
// reads the real time. The clock (a testsupport.Clock) is shared by the
// gateway, the verifier and the replay store, whose janitor reads it.
var t0 = time.Unix(1_700_000_000, 0).UTC()

const (
	cookieName   = "__Host-embed_session"
	selfOrigin   = "https://portal.gate.test"
	acmeOrigin   = "https://app.acme.test"
	acmeLogin    = "https://app.acme.test/login"
	acmeHost     = "acme.gate.test"
	globexOrigin = "https://globex.test"
	globexHost   = "globex.gate.test"
	evilOrigin   = "https://evil.test"
	subject      = "jane@acme.test"

	acmeCSP   = "frame-ancestors https://app.acme.test"
	globexCSP = "frame-ancestors https://globex.test"
	noneCSP   = "frame-ancestors 'none'"

	sessionTTL = 8 * time.Hour
	idle       = 30 * time.Minute

	// clearedCookie is the exact sign-out / refusal Set-Cookie line.
	clearedCookie = "__Host-embed_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=None; Partitioned"
)

var (
	acmeSecret   = "acme-hs256-secret-0123456789abcdef0123"
	globexSecret = "globex-hs256-secret-0123456789abcdef01"
	otherSecret  = "not-a-tenant-secret-0123456789abcdef01"
	sealSecret   = "session-sealing-secret-0123456789abcdef"
)

// sessionCookieRE is the exact shape of a session Set-Cookie line: no Domain,
// Path=/, HttpOnly, Secure, SameSite=None, Partitioned.
var sessionCookieRE = regexp.MustCompile(`^__Host-embed_session=([A-Za-z0-9_-]+); Path=/; Max-Age=(\d+); HttpOnly; Secure; SameSite=None; Partitioned$`)

func tenantConfigs() []tenant.Config {
	return []tenant.Config{
		{
			ID:             "acme",
			Keys:           []tenant.SecretConfig{{Secret: acmeSecret}},
			FrameAncestors: []string{acmeOrigin},
			Hosts:          []string{acmeHost},
			LoginURL:       acmeLogin,
		},
		{
			ID:             "globex",
			Keys:           []tenant.SecretConfig{{Secret: globexSecret}},
			FrameAncestors: []string{globexOrigin},
			Hosts:          []string{globexHost},
		},
	}
}

// env is one gateway under test with its clock, stores and recorders.
type env struct {
	t      testing.TB
	clock  *testsupport.Clock
	reg    *tenant.Registry
	mem    *replay.Memory
	sealer *session.Sealer
	cfg    gateway.Config
	gw     *gateway.Gateway

	mu         sync.Mutex
	events     []gateway.Event
	hooked     []*session.Session
	hookClaims []map[string]any
	secrets    []string // values no audit event may contain
}

type option func(e *env, c *gateway.Config)

func withForward(fcs ...gateway.ForwardClaim) option {
	return func(_ *env, c *gateway.Config) { c.ForwardClaims = append(c.ForwardClaims, fcs...) }
}

func withRequire(rs ...gateway.Requirement) option {
	return func(_ *env, c *gateway.Config) { c.Require = append(c.Require, rs...) }
}

func newEnv(tb testing.TB, opts ...option) *env {
	tb.Helper()
	e := &env{t: tb, clock: testsupport.NewClock(t0)}
	reg, err := tenant.NewRegistry(tenantConfigs())
	if err != nil {
		tb.Fatal(err)
	}
	e.reg = reg
	e.mem = replay.NewMemory(e.clock.Now)
	tb.Cleanup(e.mem.Close)
	if e.sealer, err = session.NewSealer(cookieName, [][]byte{[]byte(sealSecret)}); err != nil {
		tb.Fatal(err)
	}
	e.secrets = append(e.secrets, acmeSecret, globexSecret, otherSecret, sealSecret)
	e.cfg = gateway.Config{
		Tenants:     func() *tenant.Registry { return reg },
		Sealer:      e.sealer,
		Replay:      e.mem,
		Revocations: e.mem,
		SessionTTL:  sessionTTL,
		IdleTimeout: idle,
		MaxTokenAge: 120 * time.Second,
		Leeway:      30 * time.Second,
		CookieName:  cookieName,
		Prefix:      "/.embed",
		TokenParam:  "embed_token",
		Now:         e.clock.Now,
		Audit: func(_ *http.Request, ev gateway.Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
		},
		OnSession: func(_ *http.Request, s *session.Session, claims map[string]any) {
			e.mu.Lock()
			e.hooked = append(e.hooked, s)
			e.hookClaims = append(e.hookClaims, claims)
			e.mu.Unlock()
		},
	}
	for _, o := range opts {
		o(e, &e.cfg)
	}
	if e.gw, err = gateway.New(e.cfg); err != nil {
		tb.Fatal(err)
	}
	if t, ok := tb.(*testing.T); ok {
		t.Cleanup(func() { e.checkAuditLeaks(t) })
	}
	return e
}

// remember records a value that must never show up in an audit event.
func (e *env) remember(vals ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, v := range vals {
		if v != "" {
			e.secrets = append(e.secrets, v)
		}
	}
}

// checkAuditLeaks asserts, on every string field of every event the test
// produced, that no token (or token segment), jti, session id, cookie value
// or secret appears.
func (e *env) checkAuditLeaks(t *testing.T) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, ev := range e.events {
		v := reflect.ValueOf(ev)
		for f := 0; f < v.NumField(); f++ {
			if v.Field(f).Kind() != reflect.String {
				continue
			}
			s := v.Field(f).String()
			for _, secret := range e.secrets {
				if strings.Contains(s, secret) {
					t.Errorf("audit event #%d (%s) field %s leaks a secret value %.24q…", i, ev.Kind, v.Type().Field(f).Name, secret)
				}
			}
		}
	}
}

func (e *env) eventsCopy() []gateway.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]gateway.Event(nil), e.events...)
}

func (e *env) resetEvents() {
	e.mu.Lock()
	e.events = nil
	e.mu.Unlock()
}

// lastEvent returns the only event recorded since the last reset.
func (e *env) onlyEvent() gateway.Event {
	e.t.Helper()
	evs := e.eventsCopy()
	if len(evs) != 1 {
		e.t.Fatalf("want exactly one audit event, got %d: %+v", len(evs), evs)
	}
	return evs[0]
}

// claims is a token body every rule accepts, for tenant iss, with a fresh
// random jti, minted at the fake clock's time.
func (e *env) claims(iss string) jwt.MapClaims {
	return testsupport.Claims(iss, subject, e.clock.Now())
}

// sign signs c with HS256 under secret and remembers the token, its
// segments and its jti as secrets.
func (e *env) sign(secret string, c jwt.MapClaims) string {
	tok := testsupport.Mint(e.t, testsupport.HS256(secret, ""), c)
	parts := strings.Split(tok, ".")
	e.remember(tok, parts[1], parts[2])
	if jti, ok := c["jti"].(string); ok {
		e.remember(jti)
	}
	return tok
}

// mint signs a valid token for iss (acme or globex) with its own secret,
// after applying edits to the claims.
func (e *env) mint(iss string, edits ...func(jwt.MapClaims)) string {
	c := e.claims(iss)
	for _, f := range edits {
		f(c)
	}
	secret := acmeSecret
	if iss == "globex" {
		secret = globexSecret
	}
	return e.sign(secret, c)
}

func set(k string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[k] = v } }
func del(k string) func(jwt.MapClaims)        { return func(c jwt.MapClaims) { delete(c, k) } }

// jtiOf reads the jti of a token without verifying it.
func jtiOf(t testing.TB, tok string) string {
	t.Helper()
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, c); err != nil {
		t.Fatal(err)
	}
	return c["jti"].(string)
}

// ---- requests ----

type reqOpt func(r *http.Request)

func hdr(k, v string) reqOpt { return func(r *http.Request) { r.Header.Add(k, v) } }

// rawHdr adds values under a literal (possibly non-canonical) header key.
func rawHdr(k string, vs ...string) reqOpt {
	return func(r *http.Request) { r.Header[k] = append(r.Header[k], vs...) }
}

func onHost(h string) reqOpt {
	return func(r *http.Request) { r.Host = h; r.URL.Host = h }
}

func withCookie(v string) reqOpt { return hdr("Cookie", cookieName+"="+v) }
func fromOrigin(o string) reqOpt { return hdr("Origin", o) }
func fetchSite(s string) reqOpt  { return hdr("Sec-Fetch-Site", s) }

// navigate marks a browser navigation to a document of kind dest
// ("iframe" or "document").
func navigate(dest string) reqOpt {
	return func(r *http.Request) {
		r.Header.Set("Sec-Fetch-Mode", "navigate")
		r.Header.Set("Sec-Fetch-Dest", dest)
		r.Header.Set("Accept", "text/html,application/xhtml+xml")
	}
}

// xhr marks a same-origin fetch() from the app.
func xhr() reqOpt {
	return func(r *http.Request) {
		r.Header.Set("Sec-Fetch-Mode", "cors")
		r.Header.Set("Sec-Fetch-Dest", "empty")
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		r.Header.Set("Accept", "application/json")
	}
}

// newReq builds an HTTPS request for https://portal.gate.test + target
// (r.TLS is set by httptest for an https URL).
func newReq(method, target string, body io.Reader, opts ...reqOpt) *http.Request {
	r := httptest.NewRequest(method, selfOrigin+target, body)
	for _, o := range opts {
		o(r)
	}
	return r
}

func jsonReq(target, body string, opts ...reqOpt) *http.Request {
	r := newReq(http.MethodPost, target, strings.NewReader(body), opts...)
	r.Header.Set("Content-Type", "application/json")
	return r
}

func formReq(target string, form url.Values, opts ...reqOpt) *http.Request {
	r := newReq(http.MethodPost, target, strings.NewReader(form.Encode()), opts...)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func tokenJSON(tok string, extra ...string) string {
	m := map[string]string{"token": tok}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// exchangeReq is the start page's JSON exchange.
func exchangeReq(tok string, opts ...reqOpt) *http.Request {
	return jsonReq("/.embed/exchange", tokenJSON(tok), opts...)
}

// ---- upstream and serving ----

// upstream is the next handler: it records what it got and writes a reply.
type upstream struct {
	calls   int
	got     *http.Request
	headers http.Header // the request headers as next saw them
	respond func(w http.ResponseWriter, r *http.Request)
}

func (u *upstream) next(w http.ResponseWriter, r *http.Request) error {
	u.calls++
	u.got = r
	u.headers = r.Header.Clone()
	if u.respond != nil {
		u.respond(w, r)
		return nil
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "app")
	return nil
}

type result struct {
	*httptest.ResponseRecorder
	up *upstream
}

// hdrs is the header as it went on the wire (snapshotted at WriteHeader).
func (r result) hdrs() http.Header { return r.Result().Header }

func (r result) setCookies() []string { return r.hdrs().Values("Set-Cookie") }

func (e *env) do(r *http.Request) result { return e.doWith(r, &upstream{}) }

func (e *env) doWith(r *http.Request, up *upstream) result {
	e.t.Helper()
	w := httptest.NewRecorder()
	if err := e.gw.ServeHTTP(w, r, up.next); err != nil {
		e.t.Fatalf("ServeHTTP returned %v", err)
	}
	res := result{w, up}
	for _, line := range res.setCookies() {
		if m := sessionCookieRE.FindStringSubmatch(line); m != nil {
			e.remember(m[1])
			if s, err := e.sealer.Open(m[1], tenant.HostOf(r.Host)); err == nil {
				e.remember(s.ID)
			}
		}
	}
	return res
}

// sessionCookie returns the value and Max-Age of the only Set-Cookie, which
// must be a well-formed session cookie.
func sessionCookie(t testing.TB, res result) (string, int) {
	t.Helper()
	lines := res.setCookies()
	if len(lines) != 1 {
		t.Fatalf("want one Set-Cookie, got %q (status %d, body %s)", lines, res.Code, res.Body)
	}
	m := sessionCookieRE.FindStringSubmatch(lines[0])
	if m == nil {
		t.Fatalf("Set-Cookie %q is not a session cookie with the expected attributes", lines[0])
	}
	age, _ := strconv.Atoi(m[2])
	return m[1], age
}

func wantNoCookie(t testing.TB, res result) {
	t.Helper()
	if c := res.setCookies(); len(c) != 0 {
		t.Fatalf("want no Set-Cookie, got %q", c)
	}
}

func wantCleared(t testing.TB, res result) {
	t.Helper()
	if c := res.setCookies(); len(c) != 1 || c[0] != clearedCookie {
		t.Fatalf("want the cookie cleared with %q, got %q", clearedCookie, c)
	}
}

func wantStatus(t testing.TB, res result, code int) {
	t.Helper()
	if res.Code != code {
		t.Fatalf("status = %d, want %d; body %s; headers %v", res.Code, code, res.Body, res.hdrs())
	}
}

// wantJSONError checks status and that the body is exactly
// {"error":code,"error_description":desc}.
func wantJSONError(t testing.TB, res result, status int, code, desc string) {
	t.Helper()
	wantStatus(t, res, status)
	if ct := res.hdrs().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	var got map[string]any
	if err := json.Unmarshal(res.Body.Bytes(), &got); err != nil {
		t.Fatalf("body %q: %v", res.Body, err)
	}
	want := map[string]any{"error": code, "error_description": desc}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("body = %v, want %v", got, want)
	}
}

func wantCSP(t testing.TB, res result, want string) {
	t.Helper()
	if got := res.hdrs().Values("Content-Security-Policy"); len(got) != 1 || got[0] != want {
		t.Fatalf("Content-Security-Policy = %q, want %q", got, want)
	}
}

func wantNotCalled(t testing.TB, res result) {
	t.Helper()
	if res.up.calls != 0 {
		t.Fatalf("next was called %d time(s); it must not be", res.up.calls)
	}
}

func wantCalled(t testing.TB, res result) {
	t.Helper()
	if res.up.calls != 1 {
		t.Fatalf("next called %d time(s), want 1 (status %d, body %s)", res.up.calls, res.Code, res.Body)
	}
}

// login exchanges a fresh acme token (after edits) and returns the cookie.
func (e *env) login(edits ...func(jwt.MapClaims)) string {
	e.t.Helper()
	res := e.do(exchangeReq(e.mint("acme", edits...)))
	wantStatus(e.t, res, http.StatusNoContent)
	v, _ := sessionCookie(e.t, res)
	return v
}

func (e *env) open(v string) *session.Session {
	e.t.Helper()
	s, err := e.sealer.Open(v, "portal.gate.test")
	if err != nil {
		e.t.Fatalf("cookie does not open: %v", err)
	}
	return s
}

// fp is the fingerprint the audit log should carry for a value, computed
// independently of gateway.Fingerprint.
func fp(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// tamper flips one character in the middle of a cookie value.
func tamper(v string) string {
	b := []byte(v)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}
