package gateway_test

// RFC 8693 token exchange at the token API, and the token API's nonce. The
// helpers are self-contained (prefixed tx) so that this file does not
// depend on the shared test helpers.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/tenant"
)

const (
	txKey       = "egk_acme-exchange-0123456789abcdefghijklm"
	txGlobexKey = "egk_globex-exchange-0123456789abcdefghijk"
	txSecret    = "acme-token-exchange-secret-0123456789ab"
	txIssuer    = "https://idp.acme.test/oauth2/default"
	txAudience  = "api://acme-crm"
)

var txT0 = time.Unix(1_800_000_000, 0).UTC()

type txKeys struct {
	rsa      *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
	rsaPEM   []byte
	stranger *rsa.PrivateKey
}

var txKeySet = sync.OnceValue(func() *txKeys {
	k := &txKeys{}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.stranger, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	k.rsaPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return k
})

func txDigest(k string) string {
	s := sha256.Sum256([]byte(k))
	return hex.EncodeToString(s[:])
}

type txEnv struct {
	t      testing.TB
	gw     *gateway.Gateway
	mu     sync.Mutex
	events []gateway.Event
	counts []string // token API outcomes the Observer saw: "tenant/reason"
	inURL  int      // requests OnTokenInURL kept out of the access log
}

type txObserver struct {
	gateway.NopObserver
	e *txEnv
}

func (o txObserver) Token(t string, why reason.Reason) {
	o.e.mu.Lock()
	o.e.counts = append(o.e.counts, t+"/"+string(why))
	o.e.mu.Unlock()
}

func newTxEnv(t testing.TB) *txEnv {
	t.Helper()
	k := txKeySet()
	der, _ := x509.MarshalPKIXPublicKey(&k.ec.PublicKey)
	reg, err := tenant.NewRegistry([]tenant.Config{
		{
			ID: "acme", Keys: []tenant.SecretConfig{{Secret: txSecret, KID: "k1"}}, APIKeys: []string{txDigest(txKey)},
			FrameAncestors: []string{"https://app.acme.test"}, LoginState: "required",
			SubjectIssuers: []tenant.SubjectIssuerConfig{{
				Issuer: txIssuer,
				PublicKeys: []tenant.PublicKeyConfig{{PEM: string(k.rsaPEM), KID: "r1"},
					{PEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), KID: "e1"}},
				Audiences: []string{txAudience}, SubjectClaim: "email", CopyClaims: []string{"email", "name", "absent"},
			}},
		},
		{ID: "globex", Keys: []tenant.SecretConfig{{Secret: "globex-token-exchange-secret-0123456789"}}, APIKeys: []string{txDigest(txGlobexKey)},
			Hosts: []string{"globex.gate.test"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &txEnv{t: t}
	mem := replay.NewMemory(func() time.Time { return txT0 })
	t.Cleanup(mem.Close)
	sealer, err := session.NewSealer("__Host-embed_session", [][]byte{[]byte("session-sealing-secret-0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	e.gw, err = gateway.New(gateway.Config{
		Tenants: func() *tenant.Registry { return reg }, Sealer: sealer, Replay: mem, Revocations: mem,
		SessionTTL: 8 * time.Hour, IdleTimeout: 30 * time.Minute, MaxTokenAge: 120 * time.Second, Leeway: 30 * time.Second,
		CookieName: "__Host-embed_session", Prefix: "/.embed", TokenParam: "embed_token",
		Now: func() time.Time { return txT0 },
		Audit: func(_ *http.Request, ev gateway.Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
		},
		Observer:     txObserver{e: e},
		OnTokenInURL: func(*http.Request) { e.inURL++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// post sends a form body to the token API with the API key (none when "").
func (e *txEnv) post(key, host, body string, hdr ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	if host == "" {
		host = "portal.gate.test"
	}
	r := httptest.NewRequest(http.MethodPost, "https://"+host+"/.embed/token", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	if err := e.gw.ServeHTTP(w, r, func(http.ResponseWriter, *http.Request) error {
		e.t.Fatal("the token API went upstream")
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return w
}

// exchangeForm is a valid request for subjectToken, with edits.
func exchangeForm(subjectToken string, edits ...func(url.Values)) string {
	f := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subjectToken},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
	}
	for _, ed := range edits {
		ed(f)
	}
	return f.Encode()
}

// accessToken is an access token from the IdP for jane, signed RS256 (r1),
// valid for an hour, with claims that must not be copied.
func accessToken(t testing.TB, edits ...func(jwt.MapClaims)) string {
	t.Helper()
	c := jwt.MapClaims{
		"iss": txIssuer, "aud": []any{txAudience, "https://graph.test"}, "sub": "00u1abcd", "email": "jane@acme.test",
		"name": "Jane Doe", "groups": []any{"admins"}, "scp": []any{"everything"}, "allowed_origins": []any{"https://evil.test"},
		"nonce": "n", "iat": txT0.Add(-5 * time.Minute).Unix(), "exp": txT0.Add(55 * time.Minute).Unix(), "jti": "idp-jti",
	}
	for _, ed := range edits {
		ed(c)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"], tok.Header["typ"] = "r1", "at+jwt"
	s, err := tok.SignedString(txKeySet().rsa)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// decodeClaims reads a token's payload without verifying it.
func decodeClaims(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// The answer is exactly RFC 8693 §2.2.1's; the embed token is an ordinary
// one-time token (HS256 under the tenant's key, single-use jti, 60 s) with
// sub from subject_claim, the copy_claims present in the subject token,
// the requested scope, and nothing else of the subject token; the
// exchange then takes it once.
func TestTokenExchangeIssues(t *testing.T) {
	e := newTxEnv(t)
	w := e.post(txKey, "", exchangeForm(accessToken(t), func(f url.Values) {
		f.Set("scope", "deals:read  deals:write deals:read")
		f.Set("requested_token_type", "urn:ietf:params:oauth:token-type:jwt")
		f.Set("origin", "ignored") // unrecognized parameters are ignored
	}))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if h := w.Header(); h.Get("Content-Type") != "application/json" || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("headers %v", h)
	}
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if keys := slices.Sorted(maps.Keys(body)); !reflect.DeepEqual(keys, []string{"access_token", "expires_in", "issued_token_type", "token_type"}) {
		t.Fatalf("members %v", keys)
	}
	if body["issued_token_type"] != "urn:ietf:params:oauth:token-type:jwt" || body["token_type"] != "N_A" || body["expires_in"] != float64(60) {
		t.Fatalf("body %v", body)
	}
	tok := body["access_token"].(string)
	c := decodeClaims(t, tok)
	jti, _ := c["jti"].(string)
	want := map[string]any{
		"iss": "acme", "aud": "acme", "sub": "jane@acme.test", "email": "jane@acme.test", "name": "Jane Doe",
		"scope": "deals:read deals:write", "iat": float64(txT0.Unix()), "exp": float64(txT0.Unix() + 60), "jti": jti,
	}
	if len(jti) < 22 || jti == "idp-jti" || !reflect.DeepEqual(c, want) {
		t.Fatalf("claims\n %v\nwant\n %v", c, want)
	}
	if hdr := decodeHeader(t, tok); hdr["alg"] != "HS256" || hdr["kid"] != "k1" {
		t.Fatalf("header %v", hdr)
	}
	e.mu.Lock()
	last := e.events[len(e.events)-1]
	counts := slices.Clone(e.counts)
	e.mu.Unlock()
	if last.Kind != gateway.EventTokenIssued || last.Tenant != "acme" || last.Subject != "jane@acme.test" || last.JTI != gateway.Fingerprint(jti) {
		t.Fatalf("audit %+v", last)
	}
	if !reflect.DeepEqual(counts, []string{"acme/"}) {
		t.Fatalf("observed %v", counts)
	}
	// Exchanged once (the start page's JSON exchange), then replayed.
	for i, wantCode := range []int{http.StatusNoContent, http.StatusUnauthorized} {
		r := httptest.NewRequest(http.MethodPost, "https://portal.gate.test/.embed/exchange", strings.NewReader(`{"token":"`+tok+`"}`))
		r.Header.Set("Content-Type", "application/json")
		ew := httptest.NewRecorder()
		_ = e.gw.ServeHTTP(ew, r, nil)
		if ew.Code != wantCode || (i == 1 && !strings.Contains(ew.Body.String(), `"replayed"`)) {
			t.Fatalf("exchange #%d: %d %s", i+1, ew.Code, ew.Body)
		}
	}
}

func decodeHeader(t testing.TB, tok string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	_ = json.Unmarshal(b, &h)
	return h
}

// The embed token never outlives the access token it was traded for, and
// an ES256 access token of subject_token_type jwt is taken as well.
func TestTokenExchangeLifetime(t *testing.T) {
	e := newTxEnv(t)
	w := e.post(txKey, "", exchangeForm(accessToken(t, func(c jwt.MapClaims) { c["exp"] = txT0.Add(20 * time.Second).Unix() })))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"expires_in":20`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	// One second left is the least that is traded (the refusals below
	// have less).
	w = e.post(txKey, "", exchangeForm(accessToken(t, func(c jwt.MapClaims) { c["exp"] = txT0.Add(time.Second).Unix() })))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"expires_in":1}`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	ec := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": txIssuer, "aud": txAudience, "email": "ann@acme.test", "exp": txT0.Add(time.Hour).Unix()})
	ec.Header["kid"] = "e1"
	s, _ := ec.SignedString(txKeySet().ec)
	w = e.post(txKey, "", exchangeForm(s, func(f url.Values) { f.Set("subject_token_type", "urn:ietf:params:oauth:token-type:jwt") }))
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var body struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	if c := decodeClaims(t, body.AccessToken); c["sub"] != "ann@acme.test" || c["name"] != nil || c["scope"] != nil {
		t.Fatalf("claims %v", c)
	}
}

// Every refusal is an RFC 6749 §5.2 body, exactly {error,
// error_description}, with the typed reason as the description; it is
// audited and counted, and issues nothing.
// An IdP's access token sent in the URL by mistake
// (POST /.embed/token?subject_token=...) would land in the access log: the
// request is kept out of it and refused, even with a valid body and in
// either encoding, so that the mistake shows at once.
func TestTokenExchangeCredentialInURL(t *testing.T) {
	for _, param := range []string{"subject_token", "actor_token", "subject%5Ftoken"} {
		e := newTxEnv(t)
		at := accessToken(t)
		r := httptest.NewRequest(http.MethodPost, "https://portal.gate.test/.embed/token?"+param+"="+at, strings.NewReader(exchangeForm(at)))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Authorization", "Bearer "+txKey)
		w := httptest.NewRecorder()
		if err := e.gw.ServeHTTP(w, r, nil); err != nil {
			t.Fatal(err)
		}
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"bad_request"`) {
			t.Errorf("?%s=: %d %s, want 400 bad_request", param, w.Code, w.Body)
		}
		if e.inURL != 1 {
			t.Errorf("?%s=: kept out of the access log %d times, want once", param, e.inURL)
		}
	}
	// The JSON token API too: a valid key and body still mint nothing.
	e := newTxEnv(t)
	r := httptest.NewRequest(http.MethodPost, "https://portal.gate.test/.embed/token?subject_token=x", strings.NewReader(`{"sub":"jane"}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+txKey)
	w := httptest.NewRecorder()
	if err := e.gw.ServeHTTP(w, r, nil); err != nil || w.Code != http.StatusBadRequest || e.inURL != 1 {
		t.Fatalf("JSON token API with ?subject_token=: %d %s (log skips %d), want 400, kept out of the log", w.Code, w.Body, e.inURL)
	}
	e = newTxEnv(t)
	if w := e.post(txKey, "", exchangeForm(accessToken(t))); w.Code != http.StatusOK || e.inURL != 0 {
		t.Fatalf("a body-only exchange: %d, log skips %d", w.Code, e.inURL)
	}
}

func TestTokenExchangeRefusals(t *testing.T) {
	k := txKeySet()
	hsPEM := func() string { // HS256 MACed with the IdP's public key bytes
		in := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT","kid":"r1"}`)) + "." +
			strings.Split(accessToken(t), ".")[1]
		m := hmac.New(sha256.New, k.rsaPEM)
		m.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + strings.Split(accessToken(t), ".")[1] + "."
	stranger := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": txIssuer, "aud": txAudience, "email": "x@y", "exp": txT0.Add(time.Hour).Unix()})
		tok.Header["kid"] = "r1"
		s, _ := tok.SignedString(k.stranger)
		return s
	}
	set := func(k, v string) func(url.Values) { return func(f url.Values) { f.Set(k, v) } }
	add := func(k, v string) func(url.Values) { return func(f url.Values) { f.Add(k, v) } }
	drop := func(k string) func(url.Values) { return func(f url.Values) { f.Del(k) } }
	claim := func(k string, v any) func(jwt.MapClaims) {
		return func(c jwt.MapClaims) {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
	}
	cases := []struct {
		name, key, host, body string
		status                int
		code, desc            string
	}{
		{"no API key", "", "", exchangeForm(accessToken(t)), 401, "invalid_client", "api_key_invalid"},
		{"unknown API key", "egk_nobody", "", exchangeForm(accessToken(t)), 401, "invalid_client", "api_key_invalid"},
		{"another tenant's key on its host", txKey, "globex.gate.test", exchangeForm(accessToken(t)), 401, "invalid_client", "api_key_invalid"},
		{"no grant_type", txKey, "", exchangeForm(accessToken(t), drop("grant_type")), 400, "invalid_request", "bad_request"},
		{"empty grant_type", txKey, "", exchangeForm(accessToken(t), set("grant_type", "")), 400, "invalid_request", "bad_request"},
		{"another grant_type", txKey, "", exchangeForm(accessToken(t), set("grant_type", "client_credentials")), 400, "unsupported_grant_type", "bad_request"},
		{"grant_type twice", txKey, "", exchangeForm(accessToken(t), add("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")), 400, "invalid_request", "bad_request"},
		{"no subject_token", txKey, "", exchangeForm("", drop("subject_token")), 400, "invalid_request", "bad_request"},
		{"subject_token twice", txKey, "", exchangeForm(accessToken(t), add("subject_token", accessToken(t))), 400, "invalid_request", "bad_request"},
		{"no subject_token_type", txKey, "", exchangeForm(accessToken(t), drop("subject_token_type")), 400, "invalid_request", "bad_request"},
		{"an id_token", txKey, "", exchangeForm(accessToken(t), set("subject_token_type", "urn:ietf:params:oauth:token-type:id_token")), 400, "invalid_request", "bad_request"},
		{"scope twice", txKey, "", exchangeForm(accessToken(t), set("scope", "a"), add("scope", "b")), 400, "invalid_request", "bad_request"},
		{"requested an access token", txKey, "", exchangeForm(accessToken(t), set("requested_token_type", "urn:ietf:params:oauth:token-type:access_token")), 400, "invalid_target", "bad_request"},
		{"delegation", txKey, "", exchangeForm(accessToken(t), set("actor_token", accessToken(t)), set("actor_token_type", "urn:ietf:params:oauth:token-type:jwt")), 400, "invalid_request", "bad_request"},
		{"scope with a quote", txKey, "", exchangeForm(accessToken(t), set("scope", `deals "x"`)), 400, "invalid_request", "bad_request"},
		{"tenant without subject_issuer", txGlobexKey, "", exchangeForm(accessToken(t)), 400, "invalid_request", "bad_request"},
		{"not a form", txKey, "", "%zz", 400, "invalid_request", "bad_request"},
		{"over 16 KiB", txKey, "", exchangeForm(accessToken(t), set("pad", strings.Repeat("x", 16<<10))), 413, "invalid_request", "bad_request"},
		// RFC 8693 §2.2.2: a target the gateway does not issue for is
		// invalid_target, not a token for the tenant the caller did not ask.
		{"audience of another tenant", txKey, "", exchangeForm(accessToken(t), set("audience", "globex")), 400, "invalid_target", "bad_request"},
		{"a second audience", txKey, "", exchangeForm(accessToken(t), set("audience", "acme"), add("audience", "api://graph")), 400, "invalid_target", "bad_request"},
		{"resource on another tenant's host", txKey, "", exchangeForm(accessToken(t), set("resource", "https://GLOBEX.gate.test:8443/")), 400, "invalid_target", "bad_request"},
		{"audience URL on another tenant's host", txKey, "", exchangeForm(accessToken(t), set("audience", "https://globex.gate.test")), 400, "invalid_target", "bad_request"},
		{"resource with a fragment", txKey, "", exchangeForm(accessToken(t), set("resource", "https://portal.gate.test/#x")), 400, "invalid_target", "bad_request"},
		{"resource without a host", txKey, "", exchangeForm(accessToken(t), set("resource", "https:///deals")), 400, "invalid_target", "bad_request"},
		{"resource not an http URL", txKey, "", exchangeForm(accessToken(t), set("resource", "urn:acme:deals")), 400, "invalid_target", "bad_request"},
		{"resource with user info", txKey, "", exchangeForm(accessToken(t), set("resource", "https://x@portal.gate.test/")), 400, "invalid_target", "bad_request"},
		// The subject token: RFC 8693 §2.2.2's invalid_request, with the reason.
		{"expired", txKey, "", exchangeForm(accessToken(t, claim("exp", txT0.Add(-time.Minute).Unix()))), 400, "invalid_request", "expired"},
		{"wrong issuer", txKey, "", exchangeForm(accessToken(t, claim("iss", "https://evil.test"))), 400, "invalid_request", "wrong_issuer"},
		{"wrong audience", txKey, "", exchangeForm(accessToken(t, claim("aud", "https://graph.test"))), 400, "invalid_request", "wrong_audience"},
		{"unknown kid", txKey, "", exchangeForm(func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": txIssuer, "aud": txAudience, "email": "x@y", "exp": txT0.Add(time.Hour).Unix()})
			tok.Header["kid"] = "rotated-away"
			s, _ := tok.SignedString(k.rsa)
			return s
		}()), 400, "invalid_request", "unknown_key"},
		{"bad signature", txKey, "", exchangeForm(stranger()), 400, "invalid_request", "bad_signature"},
		{"HS256 MACed with the public key", txKey, "", exchangeForm(hsPEM()), 400, "invalid_request", "bad_algorithm"},
		{"alg none", txKey, "", exchangeForm(none), 400, "invalid_request", "bad_algorithm"},
		{"no subject claim", txKey, "", exchangeForm(accessToken(t, claim("email", nil))), 400, "invalid_request", "missing_claim"},
		{"not yet valid", txKey, "", exchangeForm(accessToken(t, claim("nbf", txT0.Add(time.Hour).Unix()))), 400, "invalid_request", "not_yet_valid"},
		{"issued in the future", txKey, "", exchangeForm(accessToken(t, claim("iat", txT0.Add(time.Hour).Unix()), claim("exp", txT0.Add(2*time.Hour).Unix()))), 400, "invalid_request", "issued_in_future"},
		{"malformed", txKey, "", exchangeForm("not.a.jwt"), 400, "invalid_request", "malformed"},
		// It verifies (within the 30 s leeway) but has no time left to hand
		// on: a floor of 1 s minted a token 21 s past the access token's exp.
		{"expired within the leeway", txKey, "", exchangeForm(accessToken(t, claim("exp", txT0.Add(-20*time.Second).Unix()))), 400, "invalid_request", "expired"},
		{"ends within the second", txKey, "", exchangeForm(accessToken(t, claim("exp", float64(txT0.Add(999*time.Millisecond).UnixMilli())/1000))), 400, "invalid_request", "expired"},
		{"a subject with a newline", txKey, "", exchangeForm(accessToken(t, claim("email", "jane@acme.test\nX-Embed-Tenant: globex"))), 400, "invalid_request", "malformed"},
		{"a subject with a trailing space", txKey, "", exchangeForm(accessToken(t, claim("email", "jane@acme.test "))), 400, "invalid_request", "malformed"},
	}
	for _, f := range []string{"jku", "x5u", "jwk", "x5c", "crit"} {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": txIssuer, "aud": txAudience, "email": "x@y", "exp": txT0.Add(time.Hour).Unix()})
		tok.Header["kid"], tok.Header[f] = "r1", "https://evil.test/x"
		s, _ := tok.SignedString(k.rsa)
		cases = append(cases, struct {
			name, key, host, body string
			status                int
			code, desc            string
		}{"header " + f, txKey, "", exchangeForm(s), 400, "invalid_request", "forbidden_header"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTxEnv(t)
			w := e.post(tc.key, tc.host, tc.body)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			var body map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if want := map[string]any{"error": tc.code, "error_description": tc.desc}; !reflect.DeepEqual(body, want) {
				t.Fatalf("body %v, want %v", body, want)
			}
			if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("headers %v", w.Header())
			}
			if tc.status == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			if len(e.events) != 1 || e.events[0].Kind != gateway.EventReject || string(e.events[0].Reason) != tc.desc ||
				!strings.HasPrefix(e.events[0].Detail, "token exchange: ") {
				t.Fatalf("audit %+v", e.events)
			}
			if len(e.counts) != 1 || !strings.HasSuffix(e.counts[0], "/"+tc.desc) {
				t.Fatalf("observed %v", e.counts)
			}
			if strings.Contains(e.events[0].Detail, "jane@acme.test") {
				t.Fatalf("audit detail holds a claim value: %s", e.events[0].Detail)
			}
		})
	}
}

// The JSON token API takes "nonce" (a non-empty string) into the token's
// nonce claim; claims may not set it.
func TestTokenAPINonce(t *testing.T) {
	e := newTxEnv(t)
	post := func(body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "https://portal.gate.test/.embed/token", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+txKey)
		w := httptest.NewRecorder()
		_ = e.gw.ServeHTTP(w, r, nil)
		return w
	}
	w := post(`{"sub":"jane","nonce":"state-from-the-login-url"}`)
	var ok struct{ Token string }
	if err := json.Unmarshal(w.Body.Bytes(), &ok); err != nil || w.Code != http.StatusCreated {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if c := decodeClaims(t, ok.Token); c["nonce"] != "state-from-the-login-url" {
		t.Fatalf("claims %v", c)
	}
	for body, field := range map[string]string{
		`{"sub":"jane","nonce":""}`:                     "nonce",
		`{"sub":"jane","nonce":7}`:                      "nonce",
		`{"sub":"jane","nonce":"a\nb"}`:                 "nonce",
		`{"sub":"jane","claims":{"nonce":"x"}}`:         "claims.nonce",
		`{"sub":"jane","nonce":"a","nonce":"b"}`:        "nonce",
		`{"sub":"jane","metadata":{},"Nonce":"x"}`:      "Nonce",
		`{"sub":"jane","claims":{"nonce":"x"},"x":"y"}`: "x",
	} {
		w := post(body)
		var r struct{ Field string }
		_ = json.Unmarshal(w.Body.Bytes(), &r)
		if w.Code != http.StatusBadRequest || r.Field != field {
			t.Errorf("%s: %d %s, want 400 field %s", body, w.Code, w.Body, field)
		}
	}
}
