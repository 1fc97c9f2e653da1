package token

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/tenant"
)

// FuzzVerify feeds Verify two kinds of input: raw, a token as is (seeded with
// valid tokens of every alg), and header/payload JSON that the target MACs
// with acme's key a1, so that mutations reach the claim rules behind the
// signature. Verify must never panic, must fail only with a typed
// *reason.Error, and may accept only tokens that an independent check of
// every rule also accepts.
func FuzzVerify(f *testing.F) {
	reg := registry(f)
	for _, alg := range []string{tenant.HS256, tenant.RS256, tenant.ES256, tenant.EdDSA} {
		f.Add(signAlg(f, alg, "", validClaims("acme")), `{"alg":"HS256","typ":"JWT"}`, `{}`)
	}
	f.Add(signAlg(f, tenant.HS256, "a1", validClaims("acme")), `{"alg":"HS256","kid":"a1"}`,
		`{"iss":"acme","aud":["acme"],"sub":"s","jti":"j","iat":1700000000.5,"exp":1700000060,"nbf":1699999990}`)
	f.Add("", `{"alg":"none"}`, `{"iss":"acme","aud":"acme","sub":"s","jti":"j","iat":1700000000,"exp":1700000060}`)
	f.Add("a.b.c", `{"alg":"HS256","jku":"x"}`, `{"iss":"acme","aud":"acme","sub":"s","jti":"j","iat":1700000000,"exp":1700000200}`)
	f.Add("e30.e30.", `{"alg":"HS256","kid":"g1"}`, `{"iss":"acme","iss":"globex","org":{"id":[1,{"a":null}]}}`)

	f.Fuzz(func(t *testing.T, raw, hdr, payload string) {
		checkVerify(t, reg, raw)
		checkVerify(t, reg, rawHS(hdr, payload, keys().secretA))
	})
}

func checkVerify(t *testing.T, reg *tenant.Registry, raw string) {
	v := testVerifier()
	res, err := v.Verify(context.Background(), raw, reg, nil)
	if err != nil {
		var re *reason.Error
		if !errors.As(err, &re) || re.Reason == "" {
			t.Fatalf("untyped error %T %v", err, err)
		}
		if len(raw) >= 24 && strings.Contains(re.Detail, raw) {
			t.Fatalf("detail quotes the token")
		}
		return
	}
	if len(raw) > MaxTokenSize {
		t.Fatalf("accepted a %d-byte token", len(raw))
	}
	// Header, decoded independently of the code under test.
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("accepted %d segments", len(parts))
	}
	hb, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil {
		t.Fatalf("accepted a bad header encoding")
	}
	var h map[string]any
	if err := json.Unmarshal(hb, &h); err != nil {
		t.Fatalf("accepted a header that is not a JSON object")
	}
	if !allowedAlgs[res.alg] || h["alg"] != res.alg {
		t.Fatalf("accepted alg %v (result %s)", h["alg"], res.alg)
	}
	for _, name := range forbiddenHeaders {
		if _, ok := h[name]; ok {
			t.Fatalf("accepted header %s", name)
		}
	}
	if typ, ok := h["typ"]; ok {
		if s, _ := typ.(string); !strings.EqualFold(s, "JWT") {
			t.Fatalf("accepted typ %v", typ)
		}
	}
	// Key: pinned to the alg and belonging to the tenant.
	keyOK := false
	for _, k := range res.Tenant.Keys {
		if k.KID == res.keyID && k.Alg == res.alg {
			keyOK = true
		}
	}
	if !keyOK {
		t.Fatalf("verified by key %q/%s not in tenant %s", res.keyID, res.alg, res.Tenant.ID)
	}
	// Claims.
	c := res.Claims
	if c.Issuer != res.Tenant.ID || len(c.Audience) != 1 || c.Audience[0] != res.Tenant.ID {
		t.Fatalf("accepted iss %q aud %q for tenant %s", c.Issuer, c.Audience, res.Tenant.ID)
	}
	if c.Raw["iss"] != c.Issuer || c.Raw["sub"] != c.Subject || c.Raw["jti"] != c.ID {
		t.Fatalf("claims disagree with the raw claims")
	}
	if c.Subject == "" || c.ID == "" {
		t.Fatalf("accepted an empty sub or jti")
	}
	if !c.ExpiresAt.After(c.IssuedAt) || c.ExpiresAt.Sub(c.IssuedAt) > DefaultMaxTokenAge {
		t.Fatalf("accepted lifetime %s", c.ExpiresAt.Sub(c.IssuedAt))
	}
	horizon := now.Add(v.Leeway)
	if c.IssuedAt.After(horizon) || c.NotBefore.After(horizon) || !c.ExpiresAt.Add(v.Leeway).After(now) {
		t.Fatalf("accepted outside its window: iat %v nbf %v exp %v", c.IssuedAt, c.NotBefore, c.ExpiresAt)
	}
	if ttl := v.ReplayTTL(c); ttl < time.Second || ttl < c.ExpiresAt.Add(2*MaxLeeway).Sub(now) {
		t.Fatalf("ReplayTTL %s does not cover the window", ttl)
	}
	// The same token, bound to its tenant, verifies; bound to any other, never.
	if _, err := v.Verify(context.Background(), raw, nil, res.Tenant); err != nil {
		t.Fatalf("rejected when bound to its own tenant: %v", err)
	}
	for _, id := range []string{"acme", "globex", "rsaonly", "initech"} {
		if id == res.Tenant.ID {
			continue
		}
		other, _ := reg.ByID(id)
		if _, err := v.Verify(context.Background(), raw, reg, other); reason.Of(err) != reason.WrongIssuer {
			t.Fatalf("bound to %s: got %v, want wrong_issuer", id, err)
		}
	}
}
