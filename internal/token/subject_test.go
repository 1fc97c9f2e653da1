package token

// VerifySubject: the subject token of an RFC 8693 token exchange. The
// helpers are self-contained (prefixed subj) so that this file does not
// depend on the shared test helpers.

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/policy"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/tenant"
)

const (
	subjIdP   = "https://idp.acme.test/oauth2/default"
	subjOther = "https://login.other.test/"
)

// subjT0 is the injected clock: nothing here reads the real time.
var subjT0 = time.Unix(1_800_000_000, 0).UTC()

type subjKeys struct {
	rsa      *rsa.PrivateKey
	ec, ecJ  *ecdsa.PrivateKey // ecJ: served by the "JWKS"
	ed       ed25519.PrivateKey
	stranger *ecdsa.PrivateKey // no issuer lists it
	rsaPEM   []byte
}

var subjKeySet = sync.OnceValue(func() *subjKeys {
	k := &subjKeys{}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	for _, p := range []**ecdsa.PrivateKey{&k.ec, &k.ecJ, &k.stranger} {
		if *p, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	k.rsaPEM = subjPEM(&k.rsa.PublicKey)
	return k
})

func subjPEM(pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// subjSource is a fixed KeySource, as a JWKS cache would serve.
type subjSource []tenant.Key

func (s subjSource) Keys() []tenant.Key { return s }
func (s subjSource) Lookup(_ context.Context, kid string) (tenant.Key, bool) {
	for _, k := range s {
		if k.KID == kid {
			return k, true
		}
	}
	return tenant.Key{}, false
}

// subjTenant is acme with two subject issuers: subjIdP (RSA r1, P-256 e1,
// Ed25519 d1 from PEM, P-256 j1 from its JWKS; subject_claim email) and
// subjOther (the same RSA key without kid; subject_claim sub). acme's own
// key is an HS256 secret and an RSA key of its own.
func subjTenant(t testing.TB) *tenant.Tenant {
	t.Helper()
	k := subjKeySet()
	own, _ := rsa.GenerateKey(rand.Reader, 2048)
	reg, err := tenant.NewRegistry([]tenant.Config{{
		ID:         "acme",
		Keys:       []tenant.SecretConfig{{Secret: strings.Repeat("s", 32)}},
		PublicKeys: []tenant.PublicKeyConfig{{PEM: string(subjPEM(&own.PublicKey)), KID: "own"}},
		APIKeys:    []string{strings.Repeat("ab", 32)},
		SubjectIssuers: []tenant.SubjectIssuerConfig{
			{
				Issuer: subjIdP, JWKS: "https://idp.acme.test/keys",
				PublicKeys: []tenant.PublicKeyConfig{
					{PEM: string(k.rsaPEM), KID: "r1"}, {PEM: string(subjPEM(&k.ec.PublicKey)), KID: "e1"},
					{PEM: string(subjPEM(k.ed.Public())), KID: "d1"},
				},
				Audiences: []string{"api://acme-crm", "crm"}, SubjectClaim: "email", CopyClaims: []string{"email", "name"},
			},
			{Issuer: subjOther, PublicKeys: []tenant.PublicKeyConfig{{PEM: string(k.rsaPEM)}}, Audiences: []string{"crm"}},
		},
	}}, tenant.WithKeySources(func(_, url string) (tenant.KeySource, error) {
		if url != "https://idp.acme.test/keys" {
			t.Fatalf("JWKS source for %s", url)
		}
		return subjSource{{KID: "j1", Alg: tenant.ES256, Public: &k.ecJ.PublicKey}}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := reg.ByID("acme")
	return tn
}

// subjClaims is an access token every rule accepts: issued 10 minutes ago,
// valid for an hour (far over max_token_age, which does not apply).
func subjClaims(edits ...func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss": subjIdP, "aud": []any{"https://graph.test", "api://acme-crm"}, "sub": "00u1abcd",
		"email": "jane@acme.test", "name": "Jane", "groups": []any{"sales"}, "scp": []any{"openid"},
		"iat": subjT0.Add(-10 * time.Minute).Unix(), "exp": subjT0.Add(50 * time.Minute).Unix(),
	}
	for _, f := range edits {
		f(c)
	}
	return c
}

func subjSet(k string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[k] = v } }
func subjDel(k string) func(jwt.MapClaims)        { return func(c jwt.MapClaims) { delete(c, k) } }

// subjRS signs with the issuer's RSA key as r1, typ at+jwt.
func subjRS(t testing.TB, c jwt.MapClaims, hdr ...any) string {
	t.Helper()
	h := map[string]any{"kid": "r1", "typ": "at+jwt"}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i].(string)] = hdr[i+1]
	}
	return sign(t, jwt.SigningMethodRS256, subjKeySet().rsa, h, c)
}

func subjB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// subjRaw is header and payload JSON as given, with sig as the signature.
func subjRaw(header, payload string, sig []byte) string {
	return subjB64([]byte(header)) + "." + subjB64([]byte(payload)) + "." + subjB64(sig)
}

func subjVerifier() *Verifier {
	return &Verifier{MaxTokenAge: 2 * time.Minute, Leeway: 30 * time.Second, Now: func() time.Time { return subjT0 }}
}

func subjWant(t testing.TB, err error, want reason.Reason) {
	t.Helper()
	var re *reason.Error
	if !errors.As(err, &re) || re.Reason != want {
		t.Fatalf("want %s, got %v", want, err)
	}
}

// Accepted subject tokens: each key kind of the issuer, static and from
// its JWKS, typ JWT, at+jwt or none; aud a string or an array holding an
// audience; a lifetime far over max_token_age; no iat and no jti.
func TestVerifySubjectAccepts(t *testing.T) {
	tn, k := subjTenant(t), subjKeySet()
	v := subjVerifier()
	for _, tc := range []struct {
		name, tok, kid, alg string
	}{
		{"RS256 at+jwt", subjRS(t, subjClaims()), "r1", tenant.RS256},
		{"ES256 JWT", sign(t, jwt.SigningMethodES256, k.ec, map[string]any{"kid": "e1", "typ": "JWT"}, subjClaims()), "e1", tenant.ES256},
		{"EdDSA, no typ", sign(t, jwt.SigningMethodEdDSA, k.ed, map[string]any{"kid": "d1", "typ": nil}, subjClaims()), "d1", tenant.EdDSA},
		{"JWKS key", sign(t, jwt.SigningMethodES256, k.ecJ, map[string]any{"kid": "j1", "typ": "application/AT+JWT"}, subjClaims()), "j1", tenant.ES256},
		{"no kid: every key of the alg", subjRS(t, subjClaims(), "kid", nil), "r1", tenant.RS256},
		{"aud a string", subjRS(t, subjClaims(subjSet("aud", "crm"))), "r1", tenant.RS256},
		{"a day long, no iat, no jti", subjRS(t, subjClaims(subjDel("iat"), subjSet("exp", subjT0.Add(24*time.Hour).Unix()))), "r1", tenant.RS256},
		{"expired within leeway", subjRS(t, subjClaims(subjSet("exp", subjT0.Add(-20*time.Second).Unix()))), "r1", tenant.RS256},
		{"nbf and iat within leeway", subjRS(t, subjClaims(subjSet("nbf", subjT0.Add(20*time.Second).Unix()), subjSet("iat", subjT0.Add(20*time.Second).Unix()))), "r1", tenant.RS256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := v.VerifySubject(context.Background(), tc.tok, tn)
			if err != nil {
				t.Fatal(err)
			}
			if s.Issuer.Issuer != subjIdP || s.Subject != "jane@acme.test" || s.KeyID != tc.kid || s.Alg != tc.alg {
				t.Fatalf("got issuer %s sub %q kid %q alg %s", s.Issuer.Issuer, s.Subject, s.KeyID, s.Alg)
			}
			if n, _ := s.Raw["groups"].([]any); len(n) != 1 || s.ExpiresAt.Unix() != mustInt(t, s.Raw["exp"]) {
				t.Fatalf("raw claims %v, exp %s", s.Raw, s.ExpiresAt)
			}
		})
	}
	// The second issuer: subject_claim defaults to sub; its key has no kid.
	tok := sign(t, jwt.SigningMethodRS256, k.rsa, nil, subjClaims(subjSet("iss", subjOther), subjSet("aud", "crm")))
	if s, err := v.VerifySubject(context.Background(), tok, tn); err != nil || s.Subject != "00u1abcd" || s.Issuer.Issuer != subjOther {
		t.Fatalf("other issuer: %+v %v", s, err)
	}
	// A dotted subject_claim reads a nested member.
	nested := *tn
	si := *tn.SubjectIssuers[1]
	si.SubjectClaim = "user.login"
	nested.SubjectIssuers = []*tenant.SubjectIssuer{&si}
	tok = sign(t, jwt.SigningMethodRS256, k.rsa, nil, subjClaims(subjSet("iss", subjOther), subjSet("aud", "crm"), subjSet("user", map[string]any{"login": "jdoe"})))
	if s, err := v.VerifySubject(context.Background(), tok, &nested); err != nil || s.Subject != "jdoe" {
		t.Fatalf("dotted subject_claim: %+v %v", s, err)
	}
}

func mustInt(t testing.TB, v any) int64 {
	t.Helper()
	n, err := v.(json.Number).Int64()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Every rule refuses with its typed reason, and the first broken rule in
// VerifySubject's order wins.
func TestVerifySubjectRules(t *testing.T) {
	tn, k := subjTenant(t), subjKeySet()
	v := subjVerifier()
	hmacPEM := func(c jwt.MapClaims) string { // HS256 "signed" with the public key's bytes
		in := subjB64([]byte(`{"alg":"HS256","typ":"JWT","kid":"r1"}`)) + "." + subjB64(mustJSON(t, c))
		m := hmac.New(sha256.New, k.rsaPEM)
		m.Write([]byte(in))
		return in + "." + subjB64(m.Sum(nil))
	}
	payload := string(mustJSON(t, subjClaims()))
	for _, tc := range []struct {
		name string
		tok  string
		want reason.Reason
	}{
		// Structure.
		{"too large", subjRS(t, subjClaims(subjSet("pad", strings.Repeat("x", MaxTokenSize)))), reason.Malformed},
		{"not a JWS", "a.b", reason.Malformed},
		{"duplicate member", subjRaw(`{"alg":"RS256","kid":"r1"}`, `{"iss":"`+subjIdP+`","iss":"x"}`, nil), reason.Malformed},
		// Header: never HS256, none or anything off the list; no key in the token.
		{"HS256 MACed with the public key", hmacPEM(subjClaims()), reason.BadAlgorithm},
		{"alg none", subjRaw(`{"alg":"none","typ":"JWT"}`, payload, nil), reason.BadAlgorithm},
		{"alg None", subjRaw(`{"alg":"None"}`, payload, nil), reason.BadAlgorithm},
		{"RS384", subjRaw(`{"alg":"RS384","kid":"r1"}`, payload, []byte("x")), reason.BadAlgorithm},
		{"no alg", subjRaw(`{"kid":"r1"}`, payload, []byte("x")), reason.Malformed},
		{"jku", subjRS(t, subjClaims(), "jku", "https://evil.test/jwks"), reason.ForbiddenHeader},
		{"x5u", subjRS(t, subjClaims(), "x5u", "https://evil.test/cert"), reason.ForbiddenHeader},
		{"jwk", subjRS(t, subjClaims(), "jwk", map[string]any{"kty": "RSA"}), reason.ForbiddenHeader},
		{"x5c", subjRS(t, subjClaims(), "x5c", []any{"MIIB"}), reason.ForbiddenHeader},
		{"crit", subjRS(t, subjClaims(), "crit", []any{"exp"}), reason.ForbiddenHeader},
		{"typ id_token-ish", subjRS(t, subjClaims(), "typ", "JOSE"), reason.Malformed},
		{"kid not a string", subjRS(t, subjClaims(), "kid", 7), reason.Malformed},
		// Issuer.
		{"no iss", subjRS(t, subjClaims(subjDel("iss"))), reason.MissingClaim},
		{"iss not a string", subjRS(t, subjClaims(subjSet("iss", 1))), reason.Malformed},
		{"iss the tenant id", subjRS(t, subjClaims(subjSet("iss", "acme"))), reason.WrongIssuer},
		{"iss with a trailing slash", subjRS(t, subjClaims(subjSet("iss", subjIdP+"/"))), reason.WrongIssuer},
		// Keys: only the issuer's own, each for its pinned alg.
		{"unknown kid", subjRS(t, subjClaims(), "kid", "r9"), reason.UnknownKey},
		{"the tenant's own key's kid", subjRS(t, subjClaims(), "kid", "own"), reason.UnknownKey},
		{"kid of another alg", subjRS(t, subjClaims(), "kid", "e1"), reason.BadAlgorithm},
		{"alg the issuer has no key for", sign(t, jwt.SigningMethodEdDSA, k.ed, nil, subjClaims(subjSet("iss", subjOther), subjSet("aud", "crm"))), reason.BadAlgorithm},
		{"a key nobody lists", sign(t, jwt.SigningMethodES256, k.stranger, map[string]any{"kid": "e1"}, subjClaims()), reason.BadSignature},
		// Claims.
		{"no aud", subjRS(t, subjClaims(subjDel("aud"))), reason.MissingClaim},
		{"aud of another API", subjRS(t, subjClaims(subjSet("aud", "https://graph.test"))), reason.WrongAudience},
		{"aud an empty array", subjRS(t, subjClaims(subjSet("aud", []any{}))), reason.WrongAudience},
		{"aud a number", subjRS(t, subjClaims(subjSet("aud", 5))), reason.WrongAudience},
		{"aud holding a number", subjRS(t, subjClaims(subjSet("aud", []any{"crm", 5}))), reason.Malformed},
		{"aud the other issuer's only", subjRS(t, subjClaims(subjSet("aud", "api://other"))), reason.WrongAudience},
		{"no subject claim", subjRS(t, subjClaims(subjDel("email"))), reason.MissingClaim},
		{"empty subject claim", subjRS(t, subjClaims(subjSet("email", ""))), reason.MissingClaim},
		{"subject claim not a string", subjRS(t, subjClaims(subjSet("email", []any{"a"}))), reason.Malformed},
		{"no exp", subjRS(t, subjClaims(subjDel("exp"))), reason.MissingClaim},
		{"exp not a number", subjRS(t, subjClaims(subjSet("exp", "later"))), reason.Malformed},
		{"exp in milliseconds", subjRS(t, subjClaims(subjSet("exp", subjT0.UnixMilli()))), reason.Malformed},
		{"iat not a number", subjRS(t, subjClaims(subjSet("iat", "now"))), reason.Malformed},
		{"nbf negative", subjRS(t, subjClaims(subjSet("nbf", -1))), reason.Malformed},
		{"exp not after iat", subjRS(t, subjClaims(subjSet("iat", subjT0.Add(time.Hour).Unix()), subjSet("exp", subjT0.Add(time.Hour).Unix()))), reason.Malformed},
		{"issued in the future", subjRS(t, subjClaims(subjSet("iat", subjT0.Add(time.Minute).Unix()))), reason.IssuedInFuture},
		{"not yet valid", subjRS(t, subjClaims(subjSet("nbf", subjT0.Add(time.Minute).Unix()))), reason.NotYetValid},
		{"expired", subjRS(t, subjClaims(subjSet("exp", subjT0.Add(-31*time.Second).Unix()))), reason.Expired},
		{"expired at exp + leeway exactly", subjRS(t, subjClaims(subjSet("exp", subjT0.Add(-30*time.Second).Unix()))), reason.Expired},
		// Order: the header before the issuer, the issuer before the
		// signature, the signature before the claims, aud before the clock.
		{"HS256 from an unknown issuer", hmacPEM(subjClaims(subjSet("iss", "https://evil.test"))), reason.BadAlgorithm},
		{"unknown issuer, bad signature", sign(t, jwt.SigningMethodES256, k.stranger, map[string]any{"kid": "e1"}, subjClaims(subjSet("iss", "https://evil.test"))), reason.WrongIssuer},
		{"bad signature, expired", sign(t, jwt.SigningMethodES256, k.stranger, map[string]any{"kid": "e1"}, subjClaims(subjSet("exp", 1))), reason.BadSignature},
		{"wrong audience, expired", subjRS(t, subjClaims(subjSet("aud", "x"), subjSet("exp", 1))), reason.WrongAudience},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := v.VerifySubject(context.Background(), tc.tok, tn)
			if s != nil {
				t.Fatalf("accepted: %+v", s)
			}
			subjWant(t, err, tc.want)
			// Details are safe to log: never a claim value.
			if d := err.Error(); strings.Contains(d, "jane@acme.test") || strings.Contains(d, "mallory") {
				t.Fatalf("detail holds a claim value: %s", d)
			}
		})
	}
}

// The one-time token rules do not leak into subject tokens, nor the other
// way round: Verify still refuses typ at+jwt, and max_token_age still
// bounds one-time tokens; a tenant without subject issuers takes none.
func TestVerifySubjectKeepsRulesApart(t *testing.T) {
	tn := subjTenant(t)
	v := subjVerifier()
	// A one-time token signed by the tenant's own key is no subject token.
	own := sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("s", 32)), nil, jwt.MapClaims{
		"iss": "acme", "aud": "acme", "sub": "jane", "jti": "j", "iat": subjT0.Unix(), "exp": subjT0.Add(time.Minute).Unix()})
	_, err := v.VerifySubject(context.Background(), own, tn)
	subjWant(t, err, reason.BadAlgorithm)
	if !strings.Contains(err.Error(), "never HS256") {
		t.Fatalf("HS256 is refused by the header rule itself, before any key: %v", err)
	}
	// A subject token is no one-time token.
	_, err = v.Verify(context.Background(), subjRS(t, subjClaims()), nil, tn)
	subjWant(t, err, reason.Malformed) // typ at+jwt
	bare := *tn
	bare.SubjectIssuers = nil
	_, err = v.VerifySubject(context.Background(), subjRS(t, subjClaims()), &bare)
	subjWant(t, err, reason.WrongIssuer)
}

// copy_claims may not name a claim the gateway sets itself: tenant's list
// covers RegisteredClaims.
func TestReservedClaimsCoverRegistered(t *testing.T) {
	for _, name := range append(slices.Concat(RegisteredClaims, policy.ScopeClaims()), "nonce", "allowed_origins") {
		_, err := tenant.New(tenant.Config{
			ID: "acme", Keys: []tenant.SecretConfig{{Secret: strings.Repeat("s", 32)}}, APIKeys: []string{strings.Repeat("ab", 32)},
			SubjectIssuers: []tenant.SubjectIssuerConfig{{Issuer: subjIdP, PublicKeys: []tenant.PublicKeyConfig{{PEM: string(subjKeySet().rsaPEM)}},
				Audiences: []string{"crm"}, CopyClaims: []string{name}}},
		})
		if err == nil || !strings.Contains(err.Error(), "set by the gateway") {
			t.Errorf("copy_claims %s: %v", name, err)
		}
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
