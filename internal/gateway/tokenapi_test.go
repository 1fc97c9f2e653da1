package gateway_test

// Token API (POST /.embed/token) and allowed_origins narrowing. The helpers
// here are self-contained (prefixed tapi) so that this file does not depend
// on the shared test helpers.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/testsupport"
)

const (
	tapiKeyA1     = "egk_acme-one-0123456789abcdefghijklmnopq"
	tapiKeyA2     = "egk_acme-two-0123456789abcdefghijklmnopq"
	tapiKeyG      = "egk_globex-0123456789abcdefghijklmnopqrs"
	tapiSecret    = "acme-token-api-secret-0123456789abcdef"
	tapiOriginA   = "https://app.acme.test"
	tapiOriginB   = "https://partner.acme.test"
	tapiOriginOff = "https://other.test"
)

func tapiDigest(k string) string {
	s := sha256.Sum256([]byte(k))
	return hex.EncodeToString(s[:])
}

type tapiEnv struct {
	t      testing.TB
	now    time.Time
	reg    atomic.Pointer[tenant.Registry]
	gw     *gateway.Gateway
	mu     sync.Mutex
	events []gateway.Event
	seen   []*http.Request
	tokens tokenCounts
}

func tapiConfigs(acmeKeys ...string) []tenant.Config {
	digests := make([]string, len(acmeKeys))
	for i, k := range acmeKeys {
		digests[i] = tapiDigest(k)
	}
	return []tenant.Config{
		{ID: "acme", Keys: []tenant.SecretConfig{{Secret: tapiSecret, KID: "k1"}}, APIKeys: digests,
			FrameAncestors: []string{tapiOriginA, tapiOriginB}},
		{ID: "globex", Keys: []tenant.SecretConfig{{Secret: "globex-token-api-secret-0123456789abcd"}}, APIKeys: []string{tapiDigest(tapiKeyG)},
			FrameAncestors: []string{"https://globex.test"}, Hosts: []string{"globex.gate.test"}},
	}
}

// tokenCounts records the token API outcomes the Observer is told of.
type tokenCounts struct {
	gateway.NopObserver
	mu  sync.Mutex
	got []string // "tenant/reason", reason "" when issued
}

func (c *tokenCounts) Token(t string, why reason.Reason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, t+"/"+string(why))
}

// Every token API outcome is counted for metrics: issued, and each refusal
// with its reason, whatever the log level.
func TestTokenAPIMetrics(t *testing.T) {
	e := newTapiEnv(t)
	e.token(tapiKeyA1, `{"sub":"jane"}`)
	e.token("egk_unknown", `{"sub":"jane"}`)
	e.token(tapiKeyA1, `{"sub":"jane","role":"x"}`)
	e.do(tapiReq{path: "/.embed/token", body: `{"sub":"jane"}`, hdr: map[string]string{"Authorization": "Bearer " + tapiKeyA1, "Content-Type": "application/json", "Origin": tapiOriginA}})
	want := []string{"acme/", "/api_key_invalid", "acme/bad_request", "/browser_request"}
	if strings.Join(e.tokens.got, ",") != strings.Join(want, ",") {
		t.Fatalf("observed %v, want %v", e.tokens.got, want)
	}
}

func newTapiEnv(t testing.TB) *tapiEnv {
	e := &tapiEnv{t: t, now: time.Unix(1_700_000_000, 0).UTC()}
	e.setKeys(tapiKeyA1, tapiKeyA2)
	mem := replay.NewMemory(func() time.Time { return e.now })
	t.Cleanup(mem.Close)
	sealer, err := session.NewSealer("__Host-embed_session", [][]byte{[]byte("session-sealing-secret-0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	e.gw, err = gateway.New(gateway.Config{
		Tenants: e.reg.Load, Sealer: sealer, Replay: mem, Revocations: mem,
		SessionTTL: 8 * time.Hour, IdleTimeout: 30 * time.Minute, MaxTokenAge: 120 * time.Second, Leeway: 30 * time.Second,
		CookieName: "__Host-embed_session", Prefix: "/.embed", TokenParam: "embed_token",
		ForwardClaims: []gateway.ForwardClaim{{Claim: "email", Header: "X-Embed-Email"}, {Claim: "metadata.plan", Header: "X-Embed-Plan"}, {Claim: "team", Header: "X-Embed-Team"}},
		Require:       []gateway.Requirement{{Scope: "deals:read"}},
		Now:           func() time.Time { return e.now },
		Audit: func(_ *http.Request, ev gateway.Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
		},
		Observer: &e.tokens,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// setKeys swaps in a registry whose acme tenant lists these API keys, as a
// config reload does.
func (e *tapiEnv) setKeys(keys ...string) {
	reg, err := tenant.NewRegistry(tapiConfigs(keys...))
	if err != nil {
		e.t.Fatal(err)
	}
	e.reg.Store(reg)
}

type tapiReq struct {
	method, host, path, body string
	hdr                      map[string]string
}

func (e *tapiEnv) do(q tapiReq) *httptest.ResponseRecorder {
	e.t.Helper()
	if q.method == "" {
		q.method = http.MethodPost
	}
	if q.host == "" {
		q.host = "portal.gate.test"
	}
	r := httptest.NewRequest(q.method, "https://"+q.host+q.path, strings.NewReader(q.body))
	for k, v := range q.hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	err := e.gw.ServeHTTP(w, r, func(w http.ResponseWriter, r *http.Request) error {
		e.mu.Lock()
		e.seen = append(e.seen, r.Clone(r.Context()))
		e.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

// token calls the token API with key and body.
func (e *tapiEnv) token(key, body string, hdr ...string) *httptest.ResponseRecorder {
	h := map[string]string{"Content-Type": "application/json"}
	if key != "" {
		h["Authorization"] = "Bearer " + key
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i]] = hdr[i+1]
	}
	return e.do(tapiReq{path: "/.embed/token", body: body, hdr: h})
}

type tapiResp struct {
	Token     string   `json:"token"`
	TokenType string   `json:"token_type"`
	ExpiresIn int64    `json:"expires_in"`
	ExpiresAt string   `json:"expires_at"`
	Tenant    string   `json:"tenant"`
	Scopes    []string `json:"scopes"`
	Error     string   `json:"error"`
	Desc      string   `json:"error_description"`
	Field     string   `json:"field"`
	Detail    string   `json:"detail"`
}

func decodeTapi(t testing.TB, w *httptest.ResponseRecorder) tapiResp {
	t.Helper()
	var r tapiResp
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
		t.Fatalf("body %q: %v", w.Body.String(), err)
	}
	return r
}

func (e *tapiEnv) exchange(tok string, hdr ...string) *httptest.ResponseRecorder {
	h := map[string]string{"Content-Type": "application/json"}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i]] = hdr[i+1]
	}
	body, _ := json.Marshal(map[string]string{"token": tok})
	return e.do(tapiReq{path: "/.embed/exchange", body: string(body), hdr: h})
}

func tapiCookie(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	for _, c := range w.Result().Cookies() {
		if c.Name == "__Host-embed_session" && c.Value != "" {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatalf("no session cookie: %d %s %v", w.Code, w.Body.String(), w.Header())
	return ""
}

func tapiClaims(t *testing.T, tok string) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	var h, c map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(hb, &h) != nil || json.Unmarshal(cb, &c) != nil {
		t.Fatalf("undecodable token %q", tok)
	}
	return h, c
}

// The round trip: API → token → exchange → session → upstream headers.
func TestTokenAPIRoundTrip(t *testing.T) {
	e := newTapiEnv(t)
	w := e.token(tapiKeyA1, `{"sub":"jane@acme.test","email":"jane@acme.test","name":"Jane","groups":["sales"],
		"metadata":{"plan":"gold"},"scopes":["deals:read","deals:write","deals:read"],"claims":{"team":"emea","n":12345678901234567890},"expires_in":90}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q", cc)
	}
	r := decodeTapi(t, w)
	if r.TokenType != "Bearer" || r.ExpiresIn != 90 || r.Tenant != "acme" || strings.Join(r.Scopes, " ") != "deals:read deals:write" ||
		r.ExpiresAt != e.now.Add(90*time.Second).Format(time.RFC3339) {
		t.Fatalf("response %+v", r)
	}
	var raw map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &raw)
	for _, f := range []string{"token", "token_type", "expires_in", "expires_at", "tenant", "scopes"} {
		if _, ok := raw[f]; !ok {
			t.Fatalf("response lacks %s: %s", f, w.Body.String())
		}
	}
	h, c := tapiClaims(t, r.Token)
	if h["alg"] != "HS256" || h["kid"] != "k1" || h["typ"] != "JWT" {
		t.Fatalf("header %v", h)
	}
	if c["iss"] != "acme" || c["aud"] != "acme" || c["sub"] != "jane@acme.test" || c["scope"] != "deals:read deals:write" ||
		c["team"] != "emea" || c["jti"] == "" || c["exp"].(float64)-c["iat"].(float64) != 90 {
		t.Fatalf("claims %v", c)
	}
	if !strings.Contains(r.Token[strings.Index(r.Token, ".")+1:], "") || !strings.Contains(string(mustB64(t, strings.Split(r.Token, ".")[1])), `"n":12345678901234567890`) {
		t.Fatal("a large number in claims lost precision")
	}
	if _, err := jwt.Parse(r.Token, func(*jwt.Token) (any, error) { return []byte(tapiSecret), nil }, jwt.WithTimeFunc(func() time.Time { return e.now })); err != nil {
		t.Fatalf("token does not verify with the tenant's key: %v", err)
	}

	ex := e.exchange(r.Token)
	if ex.Code != http.StatusNoContent {
		t.Fatalf("exchange %d: %s", ex.Code, ex.Body.String())
	}
	cookie := tapiCookie(t, ex)
	got := e.do(tapiReq{method: "GET", path: "/deals", hdr: map[string]string{"Cookie": cookie, "X-Embed-Subject": "mallory"}})
	if got.Code != 200 {
		t.Fatalf("session request %d: %s", got.Code, got.Body.String())
	}
	up := e.seen[len(e.seen)-1]
	for k, want := range map[string]string{"X-Embed-Tenant": "acme", "X-Embed-Subject": "jane@acme.test", "X-Embed-Email": "jane@acme.test", "X-Embed-Plan": "gold", "X-Embed-Team": "emea"} {
		if v := up.Header.Values(k); len(v) != 1 || v[0] != want {
			t.Errorf("upstream %s = %q, want %q", k, v, want)
		}
	}
	// No allowed_origins: the tenant's own frame_ancestors.
	if csp := got.Header().Get("Content-Security-Policy"); csp != "frame-ancestors "+tapiOriginA+" "+tapiOriginB {
		t.Fatalf("CSP %q", csp)
	}
	// Single-use like any other token.
	if again := e.exchange(r.Token); again.Code != http.StatusUnauthorized || !strings.Contains(again.Body.String(), "replayed") {
		t.Fatalf("replay: %d %s", again.Code, again.Body.String())
	}
	// The audit log has the issue, fingerprinted, and never the API key.
	e.mu.Lock()
	defer e.mu.Unlock()
	var issued *gateway.Event
	for i := range e.events {
		if e.events[i].Kind == gateway.EventTokenIssued {
			issued = &e.events[i]
		}
		if b, _ := json.Marshal(e.events[i]); strings.Contains(string(b), tapiKeyA1) || strings.Contains(string(b), r.Token) || strings.Contains(string(b), c["jti"].(string)) {
			t.Fatalf("audit event leaks the key, token or jti: %s", b)
		}
	}
	if issued == nil || issued.Tenant != "acme" || issued.Subject != "jane@acme.test" || len(issued.JTI) != 16 {
		t.Fatalf("token_issued event = %+v", issued)
	}
}

func mustB64(t *testing.T, s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Both listed keys work; once one is removed from the config it is refused.
func TestTokenAPIKeyRotation(t *testing.T) {
	e := newTapiEnv(t)
	for _, k := range []string{tapiKeyA1, tapiKeyA2} {
		if w := e.token(k, `{"sub":"jane"}`); w.Code != http.StatusCreated || decodeTapi(t, w).Tenant != "acme" {
			t.Fatalf("key %s: %d %s", k[:12], w.Code, w.Body.String())
		}
	}
	// The key picks the tenant.
	if w := e.token(tapiKeyG, `{"sub":"joe"}`); w.Code != http.StatusCreated || decodeTapi(t, w).Tenant != "globex" {
		t.Fatalf("globex key: %d %s", w.Code, w.Body.String())
	}
	e.setKeys(tapiKeyA2)
	if w := e.token(tapiKeyA1, `{"sub":"jane"}`); w.Code != http.StatusUnauthorized {
		t.Fatalf("removed key: %d", w.Code)
	}
	if w := e.token(tapiKeyA2, `{"sub":"jane"}`); w.Code != http.StatusCreated {
		t.Fatalf("kept key: %d", w.Code)
	}
}

func TestTokenAPIAuthentication(t *testing.T) {
	e := newTapiEnv(t)
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		host string
	}{
		{"no Authorization", map[string]string{}, ""},
		{"unknown key", map[string]string{"Authorization": "Bearer egk_unknown"}, ""},
		{"the digest is not the key", map[string]string{"Authorization": "Bearer " + tapiDigest(tapiKeyA1)}, ""},
		{"Basic scheme", map[string]string{"Authorization": "Basic " + tapiKeyA1}, ""},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}, ""},
		{"acme key on a globex host", map[string]string{"Authorization": "Bearer " + tapiKeyA1}, "globex.gate.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.hdr["Content-Type"] = "application/json"
			w := e.do(tapiReq{path: "/.embed/token", host: tc.host, body: `{"sub":"jane"}`, hdr: tc.hdr})
			r := decodeTapi(t, w)
			if w.Code != http.StatusUnauthorized || r.Error != "invalid_client" || r.Desc != "api_key_invalid" || r.Token != "" {
				t.Fatalf("%d %s", w.Code, w.Body.String())
			}
			if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer ") {
				t.Fatalf("WWW-Authenticate %q", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
	if w := e.do(tapiReq{method: "GET", path: "/.embed/token", hdr: map[string]string{"Authorization": "Bearer " + tapiKeyA1}}); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
		t.Fatalf("GET: %d allow %q", w.Code, w.Header().Get("Allow"))
	}
}

// A browser request is refused before the key is even looked at.
func TestTokenAPIRefusesBrowsers(t *testing.T) {
	e := newTapiEnv(t)
	for _, hdr := range [][]string{
		{"Origin", tapiOriginA},
		{"Origin", "null"},
		{"Origin", "https://portal.gate.test"},
		{"Sec-Fetch-Site", "same-origin"},
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "none"},
	} {
		w := e.token(tapiKeyA1, `{"sub":"jane"}`, hdr...)
		r := decodeTapi(t, w)
		if w.Code != http.StatusForbidden || r.Desc != "browser_request" || r.Token != "" {
			t.Fatalf("%s: %s → %d %s", hdr[0], hdr[1], w.Code, w.Body.String())
		}
	}
	if w := e.token("", `{"sub":"jane"}`, "Origin", tapiOriginA); w.Code != http.StatusForbidden {
		t.Fatalf("keyless browser request: %d (want 403 before auth)", w.Code)
	}
}

// Every refused body, each with its status and the field it names.
func TestTokenAPIRefusedBodies(t *testing.T) {
	e := newTapiEnv(t)
	type tc struct {
		name, body string
		status     int
		field      string
		detail     string
	}
	cases := []tc{
		{"over 16 KiB", `{"sub":"jane","metadata":{"pad":"` + strings.Repeat("x", 16<<10) + `"}}`, 413, "", "over 16384 bytes"},
		{"unknown field", `{"sub":"jane","role":"admin"}`, 400, "role", "unknown field"},
		{"field names are exact", `{"sub":"jane","Expires_In":5}`, 400, "Expires_In", "unknown field"},
		{"field names are exact: SUB", `{"sub":"jane","SUB":"mallory"}`, 400, "SUB", "unknown field"},
		{"a field twice", `{"sub":"jane","sub":"mallory"}`, 400, "sub", "given twice"},
		{"missing sub", `{"email":"jane@acme.test"}`, 400, "sub", "required"},
		{"empty sub", `{"sub":""}`, 400, "sub", "required"},
		{"sub not a string", `{"sub":42}`, 400, "sub", "wrong type"},
		{"sub with a newline", `{"sub":"jane\nX-Embed-Tenant: globex"}`, 400, "sub", "control characters"},
		{"sub with a trailing space", `{"sub":"jane "}`, 400, "sub", "starts or ends with a space"},
		{"sub with a tab", `{"sub":"jane\tdoe"}`, 400, "sub", "control characters"},
		{"groups not strings", `{"sub":"jane","groups":[1]}`, 400, "groups", "wrong type"},
		{"metadata not an object", `{"sub":"jane","metadata":"gold"}`, 400, "metadata", "wrong type"},
		{"scope with a space", `{"sub":"jane","scopes":["a b"]}`, 400, "scopes", "scope-token"},
		// require scope splits on the space alone; a scope that another
		// reader splits wider would grant more than the one scope the
		// answer shows.
		{"scope with a non-breaking space", `{"sub":"jane","scopes":["profile\u00a0deals:read"]}`, 400, "scopes", "scope-token"},
		{"scope with a quote", `{"sub":"jane","scopes":["a\"b"]}`, 400, "scopes", "scope-token"},
		{"scope with a backslash", `{"sub":"jane","scopes":["a\\b"]}`, 400, "scopes", "scope-token"},
		{"empty scope", `{"sub":"jane","scopes":[""]}`, 400, "scopes", "scope-token"},
		{"expires_in zero", `{"sub":"jane","expires_in":0}`, 400, "expires_in", "positive whole number"},
		{"expires_in negative", `{"sub":"jane","expires_in":-5}`, 400, "expires_in", "positive whole number"},
		{"expires_in fractional", `{"sub":"jane","expires_in":1.5}`, 400, "expires_in", "positive whole number"},
		{"expires_in a string", `{"sub":"jane","expires_in":"60"}`, 400, "expires_in", "positive whole number"},
		{"expires_in exponent", `{"sub":"jane","expires_in":6e1}`, 400, "expires_in", "positive whole number"},
		{"allowed_origins widening", `{"sub":"jane","allowed_origins":["` + tapiOriginOff + `"]}`, 400, "allowed_origins", "not in frame_ancestors"},
		{"allowed_origins half widening", `{"sub":"jane","allowed_origins":["` + tapiOriginA + `","` + tapiOriginOff + `"]}`, 400, "allowed_origins", "can only narrow"},
		{"allowed_origins not an origin", `{"sub":"jane","allowed_origins":["https://app.acme.test/path"]}`, 400, "allowed_origins", "no path"},
		{"allowed_origins empty", `{"sub":"jane","allowed_origins":[]}`, 400, "allowed_origins", "empty"},
		{"claims shadowing a field", `{"sub":"jane","claims":{"scope":"admin"}}`, 400, "claims.scope", "scopes field"},
		// require scope reads scp as well: an scp claim granted what scopes did not.
		{"claims granting scp", `{"sub":"jane","scopes":["deals:read"],"claims":{"scp":["deals:admin"]}}`, 400, "claims.scp", "scopes field"},
		{"claims allowed_origins", `{"sub":"jane","claims":{"allowed_origins":["` + tapiOriginOff + `"]}}`, 400, "claims.allowed_origins", "allowed_origins field"},
		{"claims name with a dot", `{"sub":"jane","metadata":{"plan":"free"},"claims":{"metadata.plan":"enterprise"}}`, 400, "claims.metadata.plan", "may not contain '.'"},
		{"metadata nested past the exchange's limit", `{"sub":"jane","metadata":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40) + `}`, 400, "", "the exchange would refuse this token"},
		{"not JSON", `sub=jane`, 400, "", "not valid JSON"},
		{"an array", `[{"sub":"jane"}]`, 400, "", "JSON object"},
		{"two objects", `{"sub":"jane"}{"sub":"mallory"}`, 400, "", "after the JSON object"},
		{"empty body", ``, 400, "", "empty body"},
	}
	for _, claim := range []string{"iss", "aud", "exp", "iat", "nbf", "jti", "sub"} {
		cases = append(cases,
			tc{"claims overrides " + claim, `{"sub":"jane","claims":{"` + claim + `":"x"}}`, 400, "claims." + claim, "registered claim"},
			tc{"metadata overrides " + claim, `{"sub":"jane","metadata":{"` + claim + `":"x"}}`, 400, "metadata." + claim, "registered claim"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := e.token(tapiKeyA1, c.body)
			r := decodeTapi(t, w)
			if w.Code != c.status || r.Field != c.field || !strings.Contains(r.Detail, c.detail) || r.Token != "" || r.Desc != "bad_request" {
				t.Fatalf("%d field=%q detail=%q; want %d field=%q detail~%q", w.Code, r.Field, r.Detail, c.status, c.field, c.detail)
			}
		})
	}
	// Content-Type must be JSON (a form is the token exchange: tokenexchange_test.go).
	w := e.do(tapiReq{path: "/.embed/token", body: `{"sub":"jane"}`, hdr: map[string]string{"Authorization": "Bearer " + tapiKeyA1, "Content-Type": "text/plain"}})
	if w.Code != http.StatusUnsupportedMediaType {
		t.Fatalf("text body: %d", w.Code)
	}
	// A body just under the limit is fine.
	pad := strings.Repeat("x", (16<<10)-200)
	if w := e.token(tapiKeyA1, `{"sub":"jane","metadata":{"p":"`+pad[:4000]+`"}}`); w.Code != http.StatusCreated {
		t.Fatalf("4 KB metadata: %d %s", w.Code, w.Body.String())
	}
	// A token over 8 KiB is refused with a clear message, not minted.
	if w := e.token(tapiKeyA1, `{"sub":"jane","metadata":{"p":"`+pad[:9000]+`"}}`); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "8192-byte limit") {
		t.Fatalf("9 KB metadata: %d %s", w.Code, w.Body.String())
	}
}

// expires_in is capped by max_token_age; absent means 60 s.
func TestTokenAPIExpiresIn(t *testing.T) {
	e := newTapiEnv(t)
	for body, want := range map[string]int64{
		`{"sub":"jane"}`:                   60,
		`{"sub":"jane","expires_in":null}`: 60,
		`{"sub":"jane","expires_in":1}`:    1,
		`{"sub":"jane","expires_in":120}`:  120,
		`{"sub":"jane","expires_in":3600}`: 120,
	} {
		w := e.token(tapiKeyA1, body)
		r := decodeTapi(t, w)
		if w.Code != http.StatusCreated || r.ExpiresIn != want {
			t.Fatalf("%s: %d expires_in=%d, want %d", body, w.Code, r.ExpiresIn, want)
		}
		_, c := tapiClaims(t, r.Token)
		if int64(c["exp"].(float64)-c["iat"].(float64)) != want {
			t.Fatalf("%s: exp - iat = %v", body, c["exp"].(float64)-c["iat"].(float64))
		}
	}
}

// allowed_origins narrows the session: its CSP and its Origin checks use the
// intersection with frame_ancestors.
func TestAllowedOriginsNarrowSession(t *testing.T) {
	e := newTapiEnv(t)
	mint := func() string {
		w := e.token(tapiKeyA1, `{"sub":"jane","scopes":["deals:read"],"allowed_origins":["`+tapiOriginB+`"]}`)
		if w.Code != http.StatusCreated {
			t.Fatalf("%d %s", w.Code, w.Body.String())
		}
		return decodeTapi(t, w).Token
	}
	tok := mint()
	if _, c := tapiClaims(t, tok); len(c["allowed_origins"].([]any)) != 1 {
		t.Fatalf("allowed_origins not carried in the token: %v", c)
	}
	// The exchange itself must come from inside the narrowed list.
	for _, hdr := range [][]string{{"Origin", tapiOriginA}, {"Origin", tapiOriginOff}} {
		if w := e.exchange(tok, hdr...); w.Code != http.StatusForbidden {
			t.Fatalf("exchange from %s: %d %s", hdr[1], w.Code, w.Body.String())
		}
	}
	body, _ := json.Marshal(map[string]string{"token": tok, "parent_origin": tapiOriginA})
	if w := e.do(tapiReq{path: "/.embed/exchange", body: string(body), hdr: map[string]string{"Content-Type": "application/json"}}); w.Code != http.StatusForbidden {
		t.Fatalf("parent_origin outside allowed_origins: %d", w.Code)
	}
	ex := e.exchange(tok, "Origin", tapiOriginB)
	if ex.Code != http.StatusNoContent {
		t.Fatalf("exchange from the allowed origin: %d %s", ex.Code, ex.Body.String())
	}
	if csp := ex.Header().Get("Content-Security-Policy"); csp != "frame-ancestors "+tapiOriginB {
		t.Fatalf("exchange CSP %q", csp)
	}
	cookie := tapiCookie(t, ex)
	get := e.do(tapiReq{method: "GET", path: "/deals", hdr: map[string]string{"Cookie": cookie}})
	if get.Code != 200 || get.Header().Get("Content-Security-Policy") != "frame-ancestors "+tapiOriginB {
		t.Fatalf("session GET: %d CSP %q", get.Code, get.Header().Get("Content-Security-Policy"))
	}
	info := e.do(tapiReq{method: "GET", path: "/.embed/session", hdr: map[string]string{"Cookie": cookie}})
	if info.Header().Get("Content-Security-Policy") != "frame-ancestors "+tapiOriginB {
		t.Fatalf("session info CSP %q", info.Header().Get("Content-Security-Policy"))
	}
	post := func(origin string) int {
		return e.do(tapiReq{path: "/deals", body: "a=1", hdr: map[string]string{"Cookie": cookie, "Origin": origin, "Content-Type": "application/x-www-form-urlencoded"}}).Code
	}
	if code := post(tapiOriginA); code != http.StatusForbidden {
		t.Fatalf("POST from a frame_ancestor outside allowed_origins: %d", code)
	}
	if code := post(tapiOriginB); code != http.StatusOK {
		t.Fatalf("POST from the allowed origin: %d", code)
	}

	// A config reload that drops the origin from frame_ancestors wins over
	// the session's list: nothing may frame it any more.
	cfgs := tapiConfigs(tapiKeyA1)
	cfgs[0].FrameAncestors = []string{tapiOriginA}
	reg, err := tenant.NewRegistry(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	e.reg.Store(reg)
	get = e.do(tapiReq{method: "GET", path: "/deals", hdr: map[string]string{"Cookie": cookie}})
	if csp := get.Header().Get("Content-Security-Policy"); csp != "frame-ancestors 'none'" {
		t.Fatalf("after the reload: CSP %q", csp)
	}
	if code := post(tapiOriginB); code != http.StatusForbidden {
		t.Fatalf("POST from a dropped origin: %d", code)
	}
}

// A customer-signed token may carry allowed_origins too; it can only narrow.
func TestAllowedOriginsClaimInSignedToken(t *testing.T) {
	e := newTapiEnv(t)
	sign := func(origins any) string {
		c := testsupport.Claims("acme", "jane", e.now)
		c["allowed_origins"], c["scope"] = origins, "deals:read"
		return testsupport.Mint(t, testsupport.HS256(tapiSecret, "k1"), c)
	}
	for _, tc := range []struct {
		name    string
		origins any
		status  int
		reason  string
		csp     string
	}{
		{"narrowed, foreign origin dropped", []string{tapiOriginOff, tapiOriginA}, 204, "", "frame-ancestors " + tapiOriginA},
		{"nothing left", []string{tapiOriginOff}, 403, "forbidden_origin", ""},
		{"empty", []string{}, 403, "forbidden_origin", ""},
		{"not an array", tapiOriginA, 401, "malformed", ""},
		{"not origins", []any{42}, 401, "malformed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := e.exchange(sign(tc.origins))
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.reason) {
				t.Fatalf("%d %s", w.Code, w.Body.String())
			}
			if tc.csp != "" {
				got := e.do(tapiReq{method: "GET", path: "/x", hdr: map[string]string{"Cookie": tapiCookie(t, w)}})
				if csp := got.Header().Get("Content-Security-Policy"); csp != tc.csp {
					t.Fatalf("CSP %q, want %q", csp, tc.csp)
				}
			}
		})
	}
}

// BenchmarkTokenAPI is one POST /.embed/token: key lookup, strict decode,
// HS256 signing.
func BenchmarkTokenAPI(b *testing.B) {
	e := newTapiEnv(b)
	body := `{"sub":"jane@acme.test","email":"jane@acme.test","scopes":["deals:read"],"metadata":{"plan":"gold"},"allowed_origins":["` + tapiOriginB + `"]}`
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "https://portal.gate.test/.embed/token", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+tapiKeyA1)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		_ = e.gw.ServeHTTP(w, r, nil)
		if w.Code != http.StatusCreated {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkNarrowedSession is a session request of a session narrowed by
// allowed_origins (its CSP is computed per request); compare with
// BenchmarkSessionPath, which it mirrors.
func BenchmarkNarrowedSession(b *testing.B) {
	e := newTapiEnv(b)
	w := e.token(tapiKeyA1, `{"sub":"jane","scopes":["deals:read"],"allowed_origins":["`+tapiOriginB+`"]}`)
	cookie := []string{tapiCookie(b, e.exchange(decodeTapi(b, w).Token))}
	r := httptest.NewRequest("GET", "https://portal.gate.test/deals/7?tab=notes", nil)
	bw := &tapiWriter{h: http.Header{}}
	next := func(w http.ResponseWriter, r *http.Request) error { w.WriteHeader(200); return nil }
	b.ReportAllocs()
	for b.Loop() {
		clear(r.Header)
		r.Header["Cookie"] = cookie
		clear(bw.h)
		if err := e.gw.ServeHTTP(bw, r, next); err != nil || bw.code != 200 || bw.h.Get("Content-Security-Policy") != "frame-ancestors "+tapiOriginB {
			b.Fatal(bw.code, err)
		}
	}
}

type tapiWriter struct {
	h    http.Header
	code int
}

func (w *tapiWriter) Header() http.Header         { return w.h }
func (w *tapiWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *tapiWriter) WriteHeader(code int)        { w.code = code }
