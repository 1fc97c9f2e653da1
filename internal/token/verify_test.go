package token

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/tenant"
)

func TestVerifyAcceptsEachAlg(t *testing.T) {
	reg := registry(t)
	acme := mustTenant(t, reg, "acme")
	tests := []struct {
		alg, kid, wantKID string
	}{
		{tenant.HS256, "a1", "a1"},
		{tenant.HS256, "", "a1"}, // no kid: every HS256 key of the tenant is tried
		{tenant.RS256, "r1", "r1"},
		{tenant.RS256, "", "r1"},
		{tenant.ES256, "e1", "e1"},
		{tenant.ES256, "", "e1"},
		{tenant.EdDSA, "d1", "d1"},
		{tenant.EdDSA, "", "d1"},
	}
	for _, tc := range tests {
		t.Run(tc.alg+"/kid="+tc.kid, func(t *testing.T) {
			raw := signAlg(t, tc.alg, tc.kid, validClaims("acme"))
			for _, expected := range []*tenant.Tenant{nil, acme} {
				res, err := testVerifier().Verify(context.Background(), raw, reg, expected)
				wantReason(t, err, "")
				if res.Tenant != acme || res.alg != tc.alg || res.keyID != tc.wantKID {
					t.Fatalf("result tenant=%s alg=%s kid=%s", res.Tenant.ID, res.alg, res.keyID)
				}
				c := res.Claims
				if c.Issuer != "acme" || !slices.Equal(c.Audience, []string{"acme"}) || c.Subject != "jane@acme.example" || c.ID != "jti-7c1e5b" {
					t.Fatalf("claims %+v", c)
				}
				if !c.IssuedAt.Equal(now) || !c.ExpiresAt.Equal(now.Add(60*time.Second)) || !c.NotBefore.IsZero() {
					t.Fatalf("times iat=%v exp=%v nbf=%v", c.IssuedAt, c.ExpiresAt, c.NotBefore)
				}
			}
		})
	}
}

func TestZeroVerifierUsesDefaults(t *testing.T) {
	reg := registry(t)
	c := validClaims("acme")
	c["iat"], c["exp"] = time.Now().Unix(), time.Now().Add(DefaultMaxTokenAge).Unix()
	raw := signAlg(t, tenant.HS256, "a1", c)
	var nilV *Verifier
	for _, v := range []*Verifier{{}, nilV} {
		_, err := v.Verify(context.Background(), raw, reg, nil)
		wantReason(t, err, "")
	}
	c["exp"] = time.Now().Add(DefaultMaxTokenAge + time.Second).Unix()
	_, err := (&Verifier{}).Verify(context.Background(), signAlg(t, tenant.HS256, "a1", c), reg, nil)
	wantReason(t, err, reason.LifetimeTooLong)
}

func TestTenantSelection(t *testing.T) {
	reg := registry(t)
	globex := mustTenant(t, reg, "globex")
	withIss := func(iss any) string {
		c := validClaims("acme")
		if iss == drop {
			delete(c, "iss")
		} else {
			c["iss"] = iss
		}
		return signAlg(t, tenant.HS256, "a1", c)
	}
	tests := []struct {
		name     string
		raw      string
		expected *tenant.Tenant
		want     reason.Reason
	}{
		{"iss missing", withIss(drop), nil, reason.MissingClaim},
		{"iss empty", withIss(""), nil, reason.MissingClaim},
		{"iss not a string", withIss(42), nil, reason.Malformed},
		{"iss unknown", withIss("umbrella"), nil, reason.UnknownTenant},
		{"iss differs in case", withIss("ACME"), nil, reason.UnknownTenant},
		{"expected tenant differs", withIss("acme"), globex, reason.WrongIssuer},
		{"expected tenant differs, iss unknown", withIss("umbrella"), globex, reason.WrongIssuer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testVerifier().Verify(context.Background(), tc.raw, reg, tc.expected)
			wantReason(t, err, tc.want)
		})
	}
}

// A request bound to one tenant must never reach another tenant's keys, even
// when the token is perfectly valid for that other tenant.
func TestExpectedTenantNeverTriesOtherKeys(t *testing.T) {
	reg := registry(t)
	globex := mustTenant(t, reg, "globex")
	raw := signAlg(t, tenant.HS256, "a1", validClaims("acme"))
	if _, err := testVerifier().Verify(context.Background(), raw, reg, nil); err != nil {
		t.Fatalf("sanity: the token is valid for acme: %v", err)
	}
	spy := &countingTenants{Tenants: reg}
	_, err := testVerifier().Verify(context.Background(), raw, spy, globex)
	wantReason(t, err, reason.WrongIssuer)
	if len(spy.calls) != 0 {
		t.Fatalf("registry consulted for %v with an expected tenant", spy.calls)
	}
	// And with the right expected tenant the registry is not needed at all.
	_, err = testVerifier().Verify(context.Background(), raw, nil, mustTenant(t, reg, "acme"))
	wantReason(t, err, "")
}

func TestKeySelection(t *testing.T) {
	reg := registry(t)
	k := keys()
	hs := func(secret []byte, kid any) string {
		hdr := map[string]any{}
		if kid != nil {
			hdr["kid"] = kid
		}
		return sign(t, jwt.SigningMethodHS256, secret, hdr, validClaims("acme"))
	}
	tests := []struct {
		name    string
		raw     string
		want    reason.Reason
		wantKID string
	}{
		{"kid a2 with its key", hs(k.secretB, "a2"), "", "a2"},
		{"no kid, second HS key", hs(k.secretB, nil), "", "a2"},
		{"empty kid counts as absent", hs(k.secretB, ""), "", "a2"},
		{"kid a1 but signed with a2's key", hs(k.secretB, "a1"), reason.BadSignature, ""},
		{"kid of another tenant", hs(k.secretG3, "g1"), reason.UnknownKey, ""},
		{"kid unknown anywhere", hs(k.secretA, "zz"), reason.UnknownKey, ""},
		{"kid differs in case", hs(k.secretA, "A1"), reason.UnknownKey, ""},
		{"kid of an RSA key on an HS256 token", hs(k.secretA, "r1"), reason.BadAlgorithm, ""},
		{"another tenant's secret, no kid", hs(k.secretG, nil), reason.BadSignature, ""},
		{"RS256 token naming an HS kid", sign(t, jwt.SigningMethodRS256, k.rsa, map[string]any{"kid": "a1"}, validClaims("acme")), reason.BadAlgorithm, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := testVerifier().Verify(context.Background(), tc.raw, reg, nil)
			wantReason(t, err, tc.want)
			if err == nil && res.keyID != tc.wantKID {
				t.Fatalf("verified by %q, want %q", res.keyID, tc.wantKID)
			}
		})
	}
}

// Algorithm confusion (RFC 8725 §2.1): an HS256 token "signed" with the bytes
// of a tenant's RSA public key must not verify, and an asymmetric alg header
// must not reach an HS secret.
func TestAlgConfusion(t *testing.T) {
	reg := registry(t)
	k := keys()
	hsWithPEM := func(iss string, kid any) string {
		hdr := map[string]any{}
		if kid != nil {
			hdr["kid"] = kid
		}
		return sign(t, jwt.SigningMethodHS256, k.rsaPEM, hdr, validClaims(iss))
	}
	// A hand-made RS256 token whose "signature" is an HMAC under the secret.
	rsHeaderHSMac := rawHS(`{"alg":"RS256","typ":"JWT"}`, `{"iss":"globex","aud":"globex","sub":"s","jti":"j","iat":1700000000,"exp":1700000060}`, k.secretG)
	tests := []struct {
		name string
		raw  string
		want reason.Reason
	}{
		{"HS256 with RSA PEM, tenant without HS keys", hsWithPEM("rsaonly", nil), reason.BadAlgorithm},
		{"HS256 with RSA PEM, tenant with an HS key", hsWithPEM("initech", nil), reason.BadSignature},
		{"HS256 with RSA PEM naming the RSA kid", hsWithPEM("initech", "ir"), reason.BadAlgorithm},
		{"RS256 header, HS-only tenant", rsHeaderHSMac, reason.BadAlgorithm},
		{"ES256 header, RSA-only tenant", sign(t, jwt.SigningMethodES256, k.ec, nil, validClaims("rsaonly")), reason.BadAlgorithm},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testVerifier().Verify(context.Background(), tc.raw, reg, nil)
			wantReason(t, err, tc.want)
		})
	}
}

// A Tenants other than tenant.Registry could hold keys tenant.New refuses;
// verification must not get weaker for it.
func TestUnusableKeysNeverVerify(t *testing.T) {
	short := []byte("short")
	k := keys()
	tenants := tenantMap{
		"weak":   {ID: "weak", Keys: []tenant.Key{{Alg: tenant.HS256, Secret: short}}},
		"empty":  {ID: "empty", Keys: []tenant.Key{{Alg: tenant.HS256}}},
		"nilpub": {ID: "nilpub", Keys: []tenant.Key{{Alg: tenant.RS256}}},
		"mixed":  {ID: "mixed", Keys: []tenant.Key{{Alg: tenant.RS256, Public: &k.ec.PublicKey}}},
	}
	tests := []struct {
		name string
		raw  string
	}{
		{"HS256 secret under 32 bytes", sign(t, jwt.SigningMethodHS256, short, nil, validClaims("weak"))},
		{"empty HS256 secret", rawHS(`{"alg":"HS256"}`, `{"iss":"empty"}`, nil)},
		{"RS256 key without material", sign(t, jwt.SigningMethodRS256, k.rsa, nil, validClaims("nilpub"))},
		{"RS256 key holding an EC key", sign(t, jwt.SigningMethodRS256, k.rsa, nil, validClaims("mixed"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testVerifier().Verify(context.Background(), tc.raw, tenants, nil)
			wantReason(t, err, reason.BadSignature)
		})
	}
}

// All listed keys verify; removing one rejects its tokens at once.
func TestKeyRotation(t *testing.T) {
	k := keys()
	old := sign(t, jwt.SigningMethodHS256, k.secretG, nil, validClaims("globex"))
	cur := sign(t, jwt.SigningMethodHS256, k.secretG2, nil, validClaims("globex"))
	reg := registry(t)
	for _, raw := range []string{old, cur} {
		_, err := testVerifier().Verify(context.Background(), raw, reg, nil)
		wantReason(t, err, "")
	}
	cfgs := configs(k)
	cfgs[1].Keys = cfgs[1].Keys[1:] // globex drops its first key
	rotated, err := tenant.NewRegistry(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	_, err = testVerifier().Verify(context.Background(), old, rotated, nil)
	wantReason(t, err, reason.BadSignature)
	_, err = testVerifier().Verify(context.Background(), cur, rotated, nil)
	wantReason(t, err, "")
}

// Details are logged: they may name iss, aud, kid and alg, never the token,
// a secret, or another claim's value.
func TestErrorDetailsAreSafe(t *testing.T) {
	reg := registry(t)
	k := keys()
	c := validClaims("acme")
	c["sub"], c["jti"] = "secret-subject-value", "secret-jti-value"
	bad := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		cc := jwt.MapClaims{}
		for n, v := range c {
			cc[n] = v
		}
		mod(cc)
		return cc
	}
	raws := []string{
		sign(t, jwt.SigningMethodHS256, k.secretG, nil, c),                                           // bad signature
		sign(t, jwt.SigningMethodHS256, k.secretA, map[string]any{"kid": "nope"}, c),                 // unknown key
		sign(t, jwt.SigningMethodHS256, k.secretA, nil, bad(func(c jwt.MapClaims) { c["exp"] = 1 })), // malformed
		sign(t, jwt.SigningMethodHS256, k.secretA, nil, bad(func(c jwt.MapClaims) { c["iat"] = now.Unix() - 600 })),
		sign(t, jwt.SigningMethodHS256, k.secretA, nil, bad(func(c jwt.MapClaims) { c["sub"] = 7 })),
		sign(t, jwt.SigningMethodHS256, k.secretA, nil, bad(func(c jwt.MapClaims) { c["aud"] = []string{"acme", "secret-subject-value"} })),
		rawHS(`{"alg":"HS256","jwk":{"k":"secret-subject-value"}}`, `{"iss":"acme"}`, k.secretA),
		rawHS(`{"alg":"HS256"}`, `{"iss":"acme","sub":"secret-subject-value","sub":"x"}`, k.secretA),
	}
	for i, raw := range raws {
		_, err := testVerifier().Verify(context.Background(), raw, reg, nil)
		if err == nil {
			t.Fatalf("#%d: accepted", i)
		}
		leak, found := containsAny(err.Error(), raw, raw[:20], string(k.secretA), string(k.secretG),
			"secret-subject-value", "secret-jti-value")
		if found {
			t.Fatalf("#%d: detail %q leaks %q", i, err, leak)
		}
	}
}
