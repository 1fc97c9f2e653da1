package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/jwks"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/tenant"
)

// fakeSource is a KeySource that records the kids it is asked for, and the
// context of the last ask.
type fakeSource struct {
	keys    []tenant.Key
	mu      sync.Mutex
	lookups []string
	lastCtx context.Context
	listed  int
}

func (f *fakeSource) Keys() []tenant.Key {
	f.mu.Lock()
	f.listed++
	f.mu.Unlock()
	return f.keys
}

func (f *fakeSource) Lookup(ctx context.Context, kid string) (tenant.Key, bool) {
	f.mu.Lock()
	f.lookups = append(f.lookups, kid)
	f.lastCtx = ctx
	f.mu.Unlock()
	for _, k := range f.keys {
		if k.KID == kid {
			return k, true
		}
	}
	return tenant.Key{}, false
}

// A tenant's static keys and its KeySource's keys verify side by side; the
// source is asked only after the static keys, and never for a token the
// header rules refuse.
func TestVerifyWithKeySource(t *testing.T) {
	k := keys()
	src := &fakeSource{keys: []tenant.Key{
		{KID: "idp-ec", Alg: tenant.ES256, Public: &k.ec.PublicKey},
		{Alg: tenant.EdDSA, Public: k.ed.Public()},
		{KID: "shadowed", Alg: tenant.ES256, Public: &k.ec.PublicKey},
	}}
	acme := &tenant.Tenant{ID: "acme", Keys: []tenant.Key{{Alg: tenant.HS256, Secret: k.secretA}, {KID: "shadowed", Alg: tenant.HS256, Secret: k.secretA}}, Source: src}
	tenants := tenantMap{"acme": acme}
	v := testVerifier()
	c := validClaims("acme")

	for _, tc := range []struct {
		name, alg, kid string
		want           reason.Reason
		wantKID        string
	}{
		{"static HS256 without kid", tenant.HS256, "", "", ""},
		{"jwks ES256 by kid", tenant.ES256, "idp-ec", "", "idp-ec"},
		{"jwks EdDSA without kid", tenant.EdDSA, "", "", ""},
		{"static key shadows a jwks kid", tenant.HS256, "shadowed", "", "shadowed"},
		{"shadowed jwks key is not reachable", tenant.ES256, "shadowed", reason.BadAlgorithm, ""},
		{"alg must match the jwks key", tenant.EdDSA, "idp-ec", reason.BadAlgorithm, ""},
		{"unknown kid", tenant.ES256, "nope", reason.UnknownKey, ""},
		{"no key for alg", tenant.RS256, "", reason.BadAlgorithm, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := v.Verify(context.Background(), signAlg(t, tc.alg, tc.kid, c), tenants, nil)
			wantReason(t, err, tc.want)
			if err == nil && res.keyID != tc.wantKID {
				t.Fatalf("verified by %q, want %q", res.keyID, tc.wantKID)
			}
		})
	}
	src.mu.Lock()
	lookups := append([]string(nil), src.lookups...)
	src.lookups = nil
	src.mu.Unlock()
	if want := []string{"idp-ec", "idp-ec", "nope"}; !slices.Equal(lookups, want) {
		t.Fatalf("source lookups = %q, want %q (static kids never reach it)", lookups, want)
	}

	// A token naming where its key lives (jku, x5u, jwk) is refused before
	// any key is looked at: nothing in a token is ever fetched.
	for _, h := range []string{"jku", "x5u", "jwk", "x5c"} {
		tok := sign(t, jwt.SigningMethodES256, k.ec, map[string]any{"kid": "unknown-kid", h: "https://evil.example/jwks.json"}, c)
		_, err := v.Verify(context.Background(), tok, tenants, nil)
		wantReason(t, err, reason.ForbiddenHeader)
	}
	if len(src.lookups) != 0 {
		t.Fatalf("source consulted for a forbidden header: %q", src.lookups)
	}
}

// Verify hands its ctx (the request's) to the KeySource, so an unknown-kid
// refetch waits no longer than the request does.
func TestVerifyPassesContextToKeySource(t *testing.T) {
	k := keys()
	src := &fakeSource{keys: []tenant.Key{{KID: "idp-ec", Alg: tenant.ES256, Public: &k.ec.PublicKey}}}
	tenants := tenantMap{"acme": {ID: "acme", Source: src}}
	type ctxKey struct{}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "request"))
	defer cancel()
	for _, kid := range []string{"idp-ec", "unknown"} {
		src.lastCtx = nil
		_, _ = testVerifier().Verify(ctx, signAlg(t, tenant.ES256, kid, validClaims("acme")), tenants, nil)
		if src.lastCtx == nil || src.lastCtx.Value(ctxKey{}) != "request" {
			t.Fatalf("kid %q: Lookup got ctx %v, not Verify's", kid, src.lastCtx)
		}
	}
}

// The gateway's verifier with a real JWKS cache on a loopback IdP: a tenant
// combining key, public_key and jwks (a migration) accepts all three; the
// IdP rotates, and the new kid verifies while the removed one is refused.
func TestVerifyJWKSRotation(t *testing.T) {
	k := keys()
	idpKey2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk := func(kid string, pub *ecdsa.PublicKey) map[string]any {
		raw, _ := pub.Bytes()
		e := base64.RawURLEncoding.EncodeToString
		return map[string]any{"kty": "EC", "crv": "P-256", "kid": kid, "x": e(raw[1:33]), "y": e(raw[33:])}
	}
	var mu sync.Mutex
	set := []map[string]any{jwk("idp-1", &k.ec.PublicKey)}
	var fetches atomic.Int32
	idp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=300")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": set})
	}))
	defer idp.Close()

	var clockMu sync.Mutex
	cacheNow := now
	advance := func(d time.Duration) { clockMu.Lock(); cacheNow = cacheNow.Add(d); clockMu.Unlock() }
	cfg := tenant.Config{
		ID:         "acme",
		Keys:       []tenant.SecretConfig{{Secret: string(k.secretA), KID: "shared"}},
		PublicKeys: []tenant.PublicKeyConfig{{PEM: string(k.edPEM), KID: "pem"}},
		JWKS:       idp.URL + "/jwks",
	}
	var cache *jwks.Cache
	reg, err := tenant.NewRegistry([]tenant.Config{cfg}, tenant.WithKeySources(func(_, url string) (tenant.KeySource, error) {
		var err error
		cache, err = jwks.New(jwks.Options{URL: url, Client: idp.Client(), Now: func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return cacheNow }})
		return cache, err
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	v := testVerifier()
	c := validClaims("acme")
	verify := func(tok string, want reason.Reason) {
		t.Helper()
		_, err := v.Verify(context.Background(), tok, reg, nil)
		wantReason(t, err, want)
	}
	verify(signAlg(t, tenant.HS256, "shared", c), "")
	verify(signAlg(t, tenant.EdDSA, "pem", c), "")
	verify(signAlg(t, tenant.ES256, "idp-1", c), "")

	// The IdP adds idp-2 and drops idp-1.
	mu.Lock()
	set = []map[string]any{jwk("idp-2", &idpKey2.PublicKey)}
	mu.Unlock()
	tok2 := sign(t, jwt.SigningMethodES256, idpKey2, map[string]any{"kid": "idp-2"}, c)
	verify(tok2, reason.UnknownKey) // within a minute of the last fetch: no refetch
	advance(jwks.MinInterval)
	verify(tok2, "") // unknown kid: one refetch, found
	verify(signAlg(t, tenant.ES256, "idp-1", c), reason.UnknownKey)
	verify(signAlg(t, tenant.HS256, "shared", c), "") // static keys unaffected
	if n := fetches.Load(); n != 2 {
		t.Fatalf("IdP fetched %d times, want 2", n)
	}
}
