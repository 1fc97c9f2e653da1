package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/testsupport"
	"github.com/embedgate/embedgate/internal/token"
)

// fixedSource is a KeySource with a fixed set of keys.
type fixedSource []tenant.Key

func (s fixedSource) Keys() []tenant.Key { return s }

func (s fixedSource) Lookup(_ context.Context, kid string) (tenant.Key, bool) {
	for _, k := range s {
		if k.KID == kid {
			return k, true
		}
	}
	return tenant.Key{}, false
}

// explainFixture is a registry of three tenants: acme with an HS256 key
// (k1) and a public key (e1) beside a JWKS (idp-1), globex with one
// HS256 key and no kid, and idp with a JWKS that has no usable key yet.
type explainFixture struct {
	reg *tenant.Registry
	ec  *ecdsa.PrivateKey
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func newExplainFixture(t *testing.T) *explainFixture {
	t.Helper()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	idp, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	reg, err := tenant.NewRegistry([]tenant.Config{
		{
			ID:         "acme",
			Keys:       []tenant.SecretConfig{{Secret: acmeSecret, KID: "k1"}},
			PublicKeys: []tenant.PublicKeyConfig{{PEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), KID: "e1"}},
			JWKS:       "https://idp.acme.test/jwks",
		},
		{ID: "globex", Keys: []tenant.SecretConfig{{Secret: globexSecret}}},
		{ID: "idp", JWKS: "https://idp.test/jwks"},
	}, tenant.WithKeySources(func(id, _ string) (tenant.KeySource, error) {
		if id == "acme" {
			// e1 again: a static key shadows a JWKS key of its kid.
			return fixedSource{{KID: "idp-1", Alg: tenant.ES256, Public: &idp.PublicKey}, {KID: "e1", Alg: tenant.ES256, Public: &idp.PublicKey}}, nil
		}
		return fixedSource{}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return &explainFixture{reg: reg, ec: ec}
}

// explainClaims is a body every rule accepts for iss, minted at t0, after
// edits.
func explainClaims(iss string, edits ...func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{"iss": iss, "aud": iss, "sub": subject, "jti": "j-1", "iat": t0.Unix(), "exp": t0.Add(time.Minute).Unix()}
	for _, f := range edits {
		f(c)
	}
	return c
}

// hs signs c with HS256 under secret, with the header members in hdr.
func hs(t *testing.T, secret string, c jwt.MapClaims, hdr ...string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	for i := 0; i+1 < len(hdr); i += 2 {
		tok.Header[hdr[i]] = hdr[i+1]
	}
	s, err := tok.SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// withHeader replaces a token's header by headerJSON (the signature no
// longer matters: the header is refused first).
func withHeader(t *testing.T, tok, headerJSON string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	return b64([]byte(headerJSON)) + "." + parts[1] + "." + parts[2]
}

// Every reason the exchange can give a token (but replayed and
// store_unavailable, which need the single-use check) is explained on one
// line: the refusal's own detail where it says what is wrong, the token's
// values where it does not, and the fix.
func TestExplainEachReason(t *testing.T) {
	f := newExplainFixture(t)
	x := &gateway.Explainer{Tenants: f.reg, MaxTokenAge: 2 * time.Minute, Leeway: 30 * time.Second, Now: func() time.Time { return t0 }}
	es256 := testsupport.Mint(t, token.Signer{Alg: tenant.ES256, Key: f.ec}, explainClaims("acme"))
	ms := t0.UnixMilli()
	for _, tc := range []struct {
		name, tok string
		why       reason.Reason // "" for valid
		line      string
	}{
		// Valid, with a static key of either kind.
		{"valid hs256", hs(t, acmeSecret, explainClaims("acme"), "kid", "k1"), "", "valid for tenant acme"},
		{"valid es256 without kid", es256, "", "valid for tenant acme"},

		// Structure.
		{"not a token", "hello", reason.Malformed, "malformed: token has 1 segments, want 3; a token is header.payload.signature: unpadded base64url of JSON objects, at most 8192 bytes (embed-mint makes one)"},

		// Header.
		{"alg not allowed, known tenant", withHeader(t, hs(t, acmeSecret, explainClaims("acme")), `{"alg":"HS512"}`), reason.BadAlgorithm,
			`bad_algorithm: alg "HS512" is not allowed (HS256, RS256, ES256, EdDSA); tenant "acme" verifies HS256, ES256: sign with that algorithm, or add a key for yours`},
		{"alg not allowed, unknown tenant", withHeader(t, hs(t, acmeSecret, explainClaims("initech")), `{"alg":"none"}`), reason.BadAlgorithm,
			`bad_algorithm: alg "none" is not allowed (HS256, RS256, ES256, EdDSA); sign with HS256 (key), RS256, ES256 or EdDSA (public_key, jwks)`},
		{"forbidden header", hs(t, acmeSecret, explainClaims("acme"), "jku", "https://evil.test/jwks"), reason.ForbiddenHeader,
			"forbidden_header: header jku is not accepted; the gateway never takes keys or extensions from a token: remove that header"},
		{"typ", hs(t, acmeSecret, explainClaims("acme"), "typ", "at+jwt"), reason.Malformed,
			"malformed: header typ must be JWT; a token is header.payload.signature: unpadded base64url of JSON objects, at most 8192 bytes (embed-mint makes one)"},

		// Tenant.
		{"unknown tenant", hs(t, acmeSecret, explainClaims("initech")), reason.UnknownTenant, `unknown_tenant: iss is "initech", this config has tenants "acme", "globex", "idp"`},

		// Key: the kids of static and JWKS keys, each once; the algorithms.
		{"unknown kid", hs(t, acmeSecret, explainClaims("acme"), "kid", "k9"), reason.UnknownKey,
			`unknown_key: kid is "k9", tenant "acme" has kids "k1", "e1", "idp-1"; send one of those, or no kid`},
		{"unknown kid, no kids", hs(t, globexSecret, explainClaims("globex"), "kid", "g1"), reason.UnknownKey,
			`unknown_key: kid is "g1", tenant "globex" has kids none; send one of those, or no kid`},
		{"kid of another alg", hs(t, acmeSecret, explainClaims("acme"), "kid", "e1"), reason.BadAlgorithm,
			`bad_algorithm: alg "HS256" does not match key "e1" of tenant "acme"; tenant "acme" verifies HS256, ES256: sign with that algorithm, or add a key for yours`},
		{"jwks without usable key", hs(t, acmeSecret, explainClaims("idp")), reason.BadAlgorithm,
			`bad_algorithm: tenant "idp" has no "HS256" key; tenant "idp" verifies nothing yet (its jwks has no usable key): sign with that algorithm, or add a key for yours`},

		// Signature.
		{"bad signature", hs(t, otherSecret, explainClaims("acme")), reason.BadSignature,
			`bad_signature: the signature does not verify under any of tenant "acme"'s keys for this alg; sign with the tenant's current secret or private key (a stale key or a secret with stray whitespace is the usual cause)`},

		// Claims: by the claim and rule of the refusal's cause.
		{"no iss", hs(t, acmeSecret, explainClaims("acme", del("iss"))), reason.MissingClaim, "missing_claim: iss is required; set iss to the tenant id"},
		{"iss not a string", hs(t, acmeSecret, explainClaims("acme", set("iss", 7))), reason.Malformed, "malformed: iss is not a string; set iss to the tenant id"},
		{"no aud", hs(t, acmeSecret, explainClaims("acme", del("aud"))), reason.MissingClaim, `missing_claim: aud is required; set aud to the tenant id ("acme")`},
		{"wrong aud", hs(t, acmeSecret, explainClaims("acme", set("aud", "acme-prod"))), reason.WrongAudience, `wrong_audience: aud is "acme-prod", this tenant expects "acme"`},
		{"aud of two", hs(t, acmeSecret, explainClaims("acme", set("aud", []string{"acme", "globex"}))), reason.WrongAudience, `wrong_audience: aud is ["acme","globex"], this tenant expects "acme"`},
		{"empty sub", hs(t, acmeSecret, explainClaims("acme", set("sub", ""))), reason.MissingClaim, "missing_claim: sub is empty; set sub to the user's id"},
		{"sub not a string", hs(t, acmeSecret, explainClaims("acme", set("sub", 42))), reason.Malformed, "malformed: sub is not a string; set sub to the user's id"},
		{"no jti", hs(t, acmeSecret, explainClaims("acme", del("jti"))), reason.MissingClaim, "missing_claim: jti is required; set jti to a new unique id for every token (e.g. a UUID)"},
		{"no iat", hs(t, acmeSecret, explainClaims("acme", del("iat"))), reason.MissingClaim, "missing_claim: iat is required; set iat to now and exp to iat + 60, in seconds since the epoch"},
		{"exp not a number", hs(t, acmeSecret, explainClaims("acme", set("exp", "soon"))), reason.Malformed, "malformed: exp is not a number; set iat to now and exp to iat + 60, in seconds since the epoch"},
		{"nbf out of range", hs(t, acmeSecret, explainClaims("acme", set("nbf", -1))), reason.Malformed, "malformed: nbf is out of range; set nbf in seconds since the epoch, or leave it out"},
		{"milliseconds", hs(t, acmeSecret, explainClaims("acme", set("iat", ms), set("exp", ms+60000))), reason.Malformed,
			"malformed: iat is out of range; iat is 1700000000000, which looks like milliseconds: iat, nbf and exp are whole seconds since the epoch (1700000000 is 2023-11-14T22:13:20Z); divide by 1000 (Math.floor(Date.now() / 1000))"},
		{"milliseconds in exp", hs(t, acmeSecret, explainClaims("acme", set("exp", ms+60000))), reason.Malformed,
			"malformed: exp is out of range; exp is 1700000060000, which looks like milliseconds"},
		{"exp not after iat", hs(t, acmeSecret, explainClaims("acme", set("exp", t0.Unix()))), reason.Malformed, "malformed: exp is not after iat; set exp = iat + the token's lifetime in seconds"},

		// The clock.
		{"lifetime", hs(t, acmeSecret, explainClaims("acme", set("exp", t0.Add(time.Hour).Unix()))), reason.LifetimeTooLong,
			"lifetime_too_long: exp - iat is 1h0m0s, limit 2m0s; set exp = iat + 120 or less (max_token_age)"},
		{"issued in future", hs(t, acmeSecret, explainClaims("acme", set("iat", t0.Add(5*time.Minute).Unix()), set("exp", t0.Add(6*time.Minute).Unix()))), reason.IssuedInFuture,
			"issued_in_future: iat is 5m0s ahead of the clock (leeway 30s); the minting server's clock is ahead: sync it (NTP)"},
		{"not yet valid", hs(t, acmeSecret, explainClaims("acme", set("nbf", t0.Add(time.Minute).Unix()))), reason.NotYetValid,
			"not_yet_valid: nbf is 1m0s ahead of the clock (leeway 30s); the minting server's clock is ahead: sync it (NTP)"},
		{"expired", hs(t, acmeSecret, explainClaims("acme", set("iat", t0.Add(-10*time.Minute).Unix()), set("exp", t0.Add(-9*time.Minute).Unix()))), reason.Expired,
			"expired: exp was 9m0s ago (leeway 30s); mint the token right before use: it lives at most max_token_age (2m0s) and is single-use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := x.Explain(context.Background(), tc.tok)
			var got reason.Reason
			if e.Err != nil {
				got = e.Err.Reason
			}
			if got != tc.why {
				t.Fatalf("reason %q, want %q (%v)", got, tc.why, e.Err)
			}
			if line := e.Line(); !strings.HasPrefix(line, tc.line) || strings.Contains(line, "\n") {
				t.Fatalf("line\n %s\nwant prefix\n %s", line, tc.line)
			}
			if tc.why == "" {
				if e.Result == nil || e.Fix != "" || e.Tenant != e.Result.Tenant {
					t.Fatalf("valid: %+v", e)
				}
				return
			}
			// The detail is the exchange's own, unchanged.
			if e.Result != nil || e.Fix == "" || !strings.Contains(e.Err.Error(), e.Err.Detail) {
				t.Fatalf("refused: %+v", e)
			}
		})
	}
}

// The tenant is the one the token's iss names, refused or not.
func TestExplainTenant(t *testing.T) {
	f := newExplainFixture(t)
	x := &gateway.Explainer{Tenants: f.reg, Now: func() time.Time { return t0 }}
	if e := x.Explain(context.Background(), hs(t, otherSecret, explainClaims("globex"))); e.Tenant == nil || e.Tenant.ID != "globex" || e.Err == nil {
		t.Fatalf("bad signature for globex: %+v", e)
	}
	if e := x.Explain(context.Background(), hs(t, acmeSecret, explainClaims("initech"))); e.Tenant != nil {
		t.Fatalf("unknown tenant: %+v", e.Tenant)
	}
	// Defaults: max_token_age 120s, no leeway.
	late := hs(t, acmeSecret, explainClaims("acme", set("iat", t0.Add(-2*time.Minute).Unix()), set("exp", t0.Add(-time.Second).Unix())))
	if e := x.Explain(context.Background(), late); !strings.HasPrefix(e.Line(), "expired: exp was 1s ago (leeway 0s); mint the token right before use: it lives at most max_token_age (2m0s)") {
		t.Fatalf("defaults: %s", e.Line())
	}
}

// unknown_tenant names the tenants given, in their order, and only the
// first 20 of a long list; with none at all, "none".
func TestExplainTenantList(t *testing.T) {
	f := newExplainFixture(t)
	tok := hs(t, acmeSecret, explainClaims("initech"))
	ids := make([]string, 25)
	for i := range ids {
		ids[i] = fmt.Sprintf("t%02d", 25-i)
	}
	x := &gateway.Explainer{Tenants: f.reg, TenantIDs: ids, Now: func() time.Time { return t0 }}
	want := `unknown_tenant: iss is "initech", this config has tenants "t25", "t24", `
	if line := x.Explain(context.Background(), tok).Line(); !strings.HasPrefix(line, want) || !strings.HasSuffix(line, `"t06", and 5 more`) {
		t.Fatalf("long list: %s", line)
	}
	empty, err := tenant.NewRegistry(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, reg := range []*tenant.Registry{empty, nil} {
		x := &gateway.Explainer{Tenants: reg, Now: func() time.Time { return t0 }}
		if line := x.Explain(context.Background(), tok).Line(); line != `unknown_tenant: iss is "initech", this config has tenants none` {
			t.Fatalf("no tenants: %s", line)
		}
	}
}

// PeekToken shows what a refused token holds, leniently; Date reads only
// the dates the verifier could accept.
func TestPeekToken(t *testing.T) {
	tok := hs(t, acmeSecret, explainClaims("acme", set("nbf", -1)), "kid", "k1")
	p := gateway.PeekToken(tok)
	if p.Issuer != "acme" || !strings.Contains(string(p.Header), `"kid":"k1"`) || p.Claims["sub"] != subject {
		t.Fatalf("peek: %+v", p)
	}
	if d, ok := p.Date("iat"); !ok || !d.Equal(t0) {
		t.Fatalf("iat %v %v", d, ok)
	}
	if _, ok := p.Date("nbf"); ok {
		t.Fatal("a negative nbf read as a date")
	}
	for _, raw := range []string{"hello", "!!.!!.!!", strings.Repeat("a", 9000) + ".e30.x"} {
		if p := gateway.PeekToken(raw); p.Header != nil || p.Payload != nil || p.Claims != nil || p.Issuer != "" {
			t.Fatalf("%.20q: %+v", raw, p)
		}
	}
	// A payload that is JSON but not an object is shown, and has no claims.
	if p := gateway.PeekToken("e30." + b64([]byte(`[1]`)) + ".x"); string(p.Payload) != "[1]" || p.Claims != nil {
		t.Fatalf("array payload: %+v", p)
	}
}

// TestExplainAgreesWithExchange: embed-inspect (the Explainer) promises the
// exchange's verdict but for the single-use check, so a token the exchange
// refuses for what it holds (its sub, its allowed_origins) is not "valid".
func TestExplainAgreesWithExchange(t *testing.T) {
	for name, edit := range map[string]func(c map[string]any){
		"sub with an edge space":       func(c map[string]any) { c["sub"] = "jane@acme.test " },
		"sub with a control character": func(c map[string]any) { c["sub"] = "jane\x01@acme.test" },
		"allowed_origins not an array": func(c map[string]any) { c["allowed_origins"] = "https://app.acme.test" },
		"allowed_origins disjoint":     func(c map[string]any) { c["allowed_origins"] = []string{evilOrigin} },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.mint("acme", func(c jwt.MapClaims) { edit(c) })
			wantExplainRefuses(t, e, &gateway.Explainer{Tenants: e.reg, MaxTokenAge: e.cfg.MaxTokenAge, Leeway: e.cfg.Leeway, Now: e.clock.Now}, tok)
		})
	}
}

// TestExplainAgreesWithExchangeOnForwardedClaims: the exchange also refuses
// a token for what its forward_claim values hold (a control character,
// which cannot travel in the header; a value too large for the session
// cookie). embed-inspect has the handler's forward_claims at hand, and the
// Explainer called such a token "valid" without looking at them.
func TestExplainAgreesWithExchangeOnForwardedClaims(t *testing.T) {
	for name, org := range map[string]any{
		"control character": "Acme\nInc",
		"too large":         strings.Repeat("x", 4500),
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, withForward(gateway.ForwardClaim{Claim: "org", Header: "X-Embed-Org"}))
			tok := e.mint("acme", func(c jwt.MapClaims) { c["org"] = org })
			wantExplainRefuses(t, e, &gateway.Explainer{Tenants: e.reg, MaxTokenAge: e.cfg.MaxTokenAge, Leeway: e.cfg.Leeway, Now: e.clock.Now,
				ForwardClaims: e.cfg.ForwardClaims, Require: e.cfg.Require}, tok)
		})
	}
}

// wantExplainRefuses checks that the exchange refuses tok and that x does
// not call it valid.
func wantExplainRefuses(t *testing.T, e *env, x *gateway.Explainer, tok string) {
	t.Helper()
	verdict := x.Explain(context.Background(), tok)
	res := e.do(exchangeReq(tok))
	if res.Code == http.StatusNoContent {
		t.Fatal("the exchange accepted the token; the test needs one it refuses")
	}
	if verdict.Err == nil {
		t.Fatalf("Explain says %q; the exchange refuses the same token with %d %s", verdict.Line(), res.Code, res.Body)
	}
}
