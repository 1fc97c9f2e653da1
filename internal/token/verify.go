package token

import (
	"context"
	"fmt"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/tenant"
)

// methods holds golang-jwt's signing method for each allowed alg. The token
// is decoded once, by splitToken; golang-jwt only checks the signature over
// the segments already decoded, with the method of the key's pinned alg.
// The methods are stateless, so sharing them is safe.
var methods = func() map[string]jwt.SigningMethod {
	m := make(map[string]jwt.SigningMethod, len(allowedAlgs))
	for alg := range allowedAlgs {
		sm := jwt.GetSigningMethod(alg)
		if sm == nil || sm.Alg() != alg {
			panic("token: golang-jwt has no signing method " + alg)
		}
		m[alg] = sm
	}
	return m
}()

// Verify checks raw against the tenants. ctx is the request's: it bounds the
// wait for a KeySource refetch on an unknown kid. expected, when non-nil, is the
// tenant the request already names (a host match or a tenant parameter): the
// token must be that tenant's, and no other tenant's keys are ever tried;
// tenants is then not consulted at all, so the keys used are expected's own.
//
// Every error is a *reason.Error whose Detail is safe to log: it never holds
// the token, a secret or a claim value other than iss, aud, kid or alg.
//
// Checks run in this fixed order; the first failure is returned:
//  1. size: len(raw) > MaxTokenSize → malformed (nothing decoded yet);
//  2. structure: three base64url segments, header and payload each exactly
//     one JSON object without duplicate names → malformed;
//  3. header: alg, forbidden headers, typ, kid (see checkHeader);
//  4. iss: absent or "" → missing_claim, not a string → malformed;
//  5. tenant: expected set and iss ≠ expected.ID → wrong_issuer; otherwise
//     iss not in tenants → unknown_tenant;
//  6. key: with kid, that tenant's key of that KID, static keys first, then
//     its KeySource's (none → unknown_key), whose Alg must equal alg (else
//     bad_algorithm); without kid, that tenant's keys of Alg alg, static and
//     KeySource ones (none → bad_algorithm);
//  7. signature under those keys, tried in order → bad_signature;
//  8. the remaining claims (see checkClaims): aud, sub, jti, iat, exp, nbf,
//     then exp > iat, lifetime, iat, nbf, exp against the clock.
func (v *Verifier) Verify(ctx context.Context, raw string, tenants Tenants, expected *tenant.Tenant) (*Result, error) {
	if len(raw) > MaxTokenSize {
		return nil, reason.Errorf(reason.Malformed, "token is %d bytes, limit %d", len(raw), MaxTokenSize)
	}
	seg, err := splitToken(raw)
	if err != nil {
		return nil, err
	}
	hdr, err := checkHeader(seg.header)
	if err != nil {
		return nil, err
	}
	iss, err := issuer(seg.payload)
	if err != nil {
		return nil, err
	}
	t, err := selectTenant(iss, tenants, expected)
	if err != nil {
		return nil, err
	}
	keys, err := selectKeys(ctx, tenantKeys(t), hdr)
	if err != nil {
		return nil, err
	}
	key, err := verifySignature(seg, keys)
	if err != nil {
		return nil, err
	}
	claims, err := v.checkClaims(seg.payload, t.ID)
	if err != nil {
		return nil, err
	}
	claims.Issuer = iss
	return &Result{Tenant: t, Claims: claims, keyID: key.KID, alg: hdr.alg}, nil
}

// issuer reads iss, the only claim looked at before the signature: it picks
// the tenant, and so the keys.
func issuer(payload map[string]any) (string, error) {
	v, ok := payload["iss"]
	if !ok {
		return "", claimErr("iss", ClaimAbsent, "iss is required")
	}
	iss, ok := v.(string)
	if !ok {
		return "", claimErr("iss", ClaimNotString, "iss is not a string")
	}
	if iss == "" {
		return "", claimErr("iss", ClaimEmpty, "iss is empty")
	}
	return iss, nil
}

// selectTenant maps iss to a tenant. With expected set the registry is not
// consulted: the request already fixed the tenant, and a token naming any
// other must not get as far as that tenant's keys.
func selectTenant(iss string, tenants Tenants, expected *tenant.Tenant) (*tenant.Tenant, error) {
	if expected != nil {
		if iss != expected.ID {
			return nil, reason.Errorf(reason.WrongIssuer, "iss %s, but this request is for tenant %s", quote(iss), quote(expected.ID))
		}
		return expected, nil
	}
	if tenants != nil {
		if t, ok := tenants.ByID(iss); ok && t != nil {
			return t, nil
		}
	}
	return nil, reason.Errorf(reason.UnknownTenant, "iss %s is not a known tenant", quote(iss))
}

// keySet is what one owner, a tenant or one of its subject issuers, may
// verify with: its static keys, then its KeySource's (a JWKS), if any.
type keySet struct {
	owner  string // `tenant "acme"`, for details
	static []tenant.Key
	source tenant.KeySource
}

func tenantKeys(t *tenant.Tenant) keySet {
	return keySet{owner: "tenant " + quote(t.ID), static: t.Keys, source: t.Source}
}

// selectKeys returns the keys of s that may verify a token with this header:
// its static keys first, then those of its KeySource (a JWKS), when it has
// one. Only s's keys are ever candidates, and each only for its own pinned
// alg, so neither a kid from another tenant nor an alg switch (HS256 "signed"
// with an RSA public key's bytes) can reach a key it was not configured for.
// A static key shadows a JWKS key of the same kid. An unknown kid may make
// the KeySource refetch its own configured URL (rate-limited there); nothing
// in the token names where keys come from.
func selectKeys(ctx context.Context, s keySet, h header) ([]*tenant.Key, error) {
	if h.kid != "" {
		k := s.staticKey(h.kid)
		if k == nil && s.source != nil {
			if sk, ok := s.source.Lookup(ctx, h.kid); ok {
				k = &sk
			}
		}
		if k == nil {
			return nil, reason.Errorf(reason.UnknownKey, "%s has no key %s", s.owner, quote(h.kid))
		}
		if k.Alg != h.alg {
			return nil, reason.Errorf(reason.BadAlgorithm, "alg %s does not match key %s of %s", quote(h.alg), quote(h.kid), s.owner)
		}
		return []*tenant.Key{k}, nil
	}
	var keys []*tenant.Key
	for i := range s.static {
		if s.static[i].Alg == h.alg {
			keys = append(keys, &s.static[i])
		}
	}
	if s.source != nil {
		src := s.source.Keys()
		for i := range src {
			if src[i].Alg == h.alg {
				keys = append(keys, &src[i])
			}
		}
	}
	if len(keys) == 0 {
		return nil, reason.Errorf(reason.BadAlgorithm, "%s has no %s key", s.owner, quote(h.alg))
	}
	return keys, nil
}

// staticKey is s's configured key with this kid, or nil.
func (s keySet) staticKey(kid string) *tenant.Key {
	for i := range s.static {
		if s.static[i].KID == kid {
			return &s.static[i]
		}
	}
	return nil
}

// verifySignature returns the first key under which seg's signature holds.
// golang-jwt does the cryptography (hmac.Equal for HS256, so the MAC
// comparison is constant-time) with the signing method of each key's own
// alg, over the signing input exactly as received.
func verifySignature(seg *segments, keys []*tenant.Key) (*tenant.Key, error) {
	for _, k := range keys {
		m := methods[k.Alg]
		if m == nil {
			continue
		}
		material, err := verificationKey(k)
		if err != nil {
			continue
		}
		if m.Verify(seg.signingInput, seg.signature, material) == nil {
			return k, nil
		}
	}
	return nil, reason.Errorf(reason.BadSignature, "signature does not verify under %d candidate key(s)", len(keys))
}

// verificationKey returns the key material golang-jwt expects for k.Alg,
// refusing material that tenant.New would not have accepted (Key.Check): a
// Tenants implementation other than tenant.Registry must not weaken
// verification.
func verificationKey(k *tenant.Key) (any, error) {
	if err := k.Check(); err != nil {
		return nil, fmt.Errorf("key unusable for %s: %w", k.Alg, err)
	}
	if k.Alg == tenant.HS256 {
		return k.Secret, nil
	}
	return k.Public, nil
}
