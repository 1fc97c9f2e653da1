package token

import (
	"context"
	"slices"
	"time"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/tenant"
)

// subjectHeader are the header rules for the subject token of a token
// exchange (RFC 8693): an identity provider's access token. Its algorithm
// is pinned by a public key, never HS256: the provider shares no secret
// with the gateway, and a MAC under a public key's bytes must not pass.
// Besides JWT, typ may be at+jwt (RFC 9068 access tokens), since that is
// what the provider meant the token to be.
var subjectHeader = headerRules{
	algs:    map[string]bool{tenant.RS256: true, tenant.ES256: true, tenant.EdDSA: true},
	algList: "RS256, ES256, EdDSA; never HS256 for a subject token",
	typs:    []string{"JWT", "at+jwt", "application/at+jwt"},
}

// Subject is a verified subject token.
type Subject struct {
	// Issuer is the tenant's subject_issuer whose iss the token carries.
	Issuer *tenant.SubjectIssuer
	// Subject is the value of the issuer's subject_claim.
	Subject string
	// ExpiresAt is exp.
	ExpiresAt time.Time
	// Raw holds every claim as decoded, numbers as json.Number.
	Raw map[string]any
	// KeyID and Alg are those of the key that verified it, as in Result.
	KeyID, Alg string
}

// VerifySubject checks raw as a subject token for tenant t, with RFC 8725's
// rules as Verify applies them, except where an access token differs from
// a one-time token: the algorithm may not be HS256, typ may be at+jwt, aud
// need only contain one of the issuer's audiences, exp is required but iat
// and jti are not, and the lifetime is not bounded by MaxTokenAge. ctx
// bounds the wait for a JWKS refetch on an unknown kid.
//
// Checks run in this order; the first failure is returned:
//  1. size and structure, as Verify (malformed);
//  2. header: alg RS256, ES256 or EdDSA (else bad_algorithm), the forbidden
//     headers (forbidden_header), typ JWT or at+jwt, kid a string;
//  3. iss: absent or "" → missing_claim, not a string → malformed; not
//     exactly one of t's subject_issuer → wrong_issuer;
//  4. key and signature among that issuer's keys only, as Verify
//     (unknown_key, bad_algorithm, bad_signature);
//  5. the claims (see checkSubjectClaims).
func (v *Verifier) VerifySubject(ctx context.Context, raw string, t *tenant.Tenant) (*Subject, error) {
	if len(raw) > MaxTokenSize {
		return nil, reason.Errorf(reason.Malformed, "token is %d bytes, limit %d", len(raw), MaxTokenSize)
	}
	seg, err := splitToken(raw)
	if err != nil {
		return nil, err
	}
	hdr, err := subjectHeader.check(seg.header)
	if err != nil {
		return nil, err
	}
	iss, err := issuer(seg.payload)
	if err != nil {
		return nil, err
	}
	si, ok := t.SubjectIssuer(iss)
	if !ok {
		return nil, reason.Errorf(reason.WrongIssuer, "iss %s is not a subject_issuer of tenant %s", quote(iss), quote(t.ID))
	}
	set := keySet{owner: "subject_issuer " + quote(iss) + " of tenant " + quote(t.ID), static: si.Keys, source: si.Source}
	keys, err := selectKeys(ctx, set, hdr)
	if err != nil {
		return nil, err
	}
	key, err := verifySignature(seg, keys)
	if err != nil {
		return nil, err
	}
	s, err := v.checkSubjectClaims(seg.payload, si)
	if err != nil {
		return nil, err
	}
	s.Issuer, s.KeyID, s.Alg = si, key.KID, hdr.alg
	return s, nil
}

// checkSubjectClaims applies the claim rules of a subject token after its
// signature has verified, in this order:
//  1. aud: absent → missing_claim; holding none of the issuer's audiences
//     (a string, or an array of strings) → wrong_audience;
//  2. the issuer's subject_claim: absent or "" → missing_claim, not a
//     string → malformed;
//  3. exp required, iat and nbf optional, each a NumericDate (else
//     missing_claim or malformed); with iat, exp <= iat → malformed;
//  4. iat > now + Leeway → issued_in_future; nbf > now + Leeway →
//     not_yet_valid; exp + Leeway <= now → expired.
//
// There is no bound on exp - iat: the provider decides how long its access
// tokens live, and the one-time token minted from it is bounded instead.
func (v *Verifier) checkSubjectClaims(p map[string]any, si *tenant.SubjectIssuer) (*Subject, error) {
	if err := subjectAudience(p, si); err != nil {
		return nil, err
	}
	c := Claims{Raw: p}
	sub, err := subjectValue(c, si.SubjectClaim)
	if err != nil {
		return nil, err
	}
	iat, err := numericDate(p, "iat", false)
	if err != nil {
		return nil, err
	}
	exp, err := numericDate(p, "exp", true)
	if err != nil {
		return nil, err
	}
	nbf, err := numericDate(p, "nbf", false)
	if err != nil {
		return nil, err
	}
	if !iat.IsZero() && !exp.After(iat) {
		return nil, claimErr("exp", ClaimNotAfterIssued, "exp is not after iat")
	}
	now, leeway := v.now(), v.leeway()
	horizon := now.Add(leeway)
	if iat.After(horizon) {
		return nil, reason.Errorf(reason.IssuedInFuture, "iat is %s ahead of the clock (leeway %s)", iat.Sub(now), leeway)
	}
	if !nbf.IsZero() && nbf.After(horizon) {
		return nil, reason.Errorf(reason.NotYetValid, "nbf is %s ahead of the clock (leeway %s)", nbf.Sub(now), leeway)
	}
	if !exp.Add(leeway).After(now) {
		return nil, reason.Errorf(reason.Expired, "expired %s ago (leeway %s)", now.Sub(exp), leeway)
	}
	return &Subject{Subject: sub, ExpiresAt: exp, Raw: p}, nil
}

// subjectAudience accepts aud when it is, or is an array that contains, one
// of the issuer's audiences: an access token may name several resource
// servers.
func subjectAudience(p map[string]any, si *tenant.SubjectIssuer) error {
	v, ok := p["aud"]
	if !ok {
		return claimErr("aud", ClaimAbsent, "aud is required")
	}
	var auds []string
	switch a := v.(type) {
	case string:
		auds = []string{a}
	case []any:
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				return claimErr("aud", ClaimNotString, "aud holds a member that is not a string")
			}
			auds = append(auds, s)
		}
	default:
		return reason.Errorf(reason.WrongAudience, "aud is neither a string nor an array")
	}
	for _, a := range auds {
		if slices.Contains(si.Audiences, a) {
			return nil
		}
	}
	return reason.Errorf(reason.WrongAudience, "aud holds none of the audiences of subject_issuer %s", quote(si.Issuer))
}

// subjectValue reads the subject claim (a dotted path) as a non-empty
// string. The detail names the claim, never its value.
func subjectValue(c Claims, claim string) (string, error) {
	v, ok := c.Lookup(claim)
	if !ok {
		return "", claimErr(claim, ClaimAbsent, "%s (the subject_claim) is required", quote(claim))
	}
	s, ok := v.(string)
	if !ok {
		return "", claimErr(claim, ClaimNotString, "%s (the subject_claim) is not a string", quote(claim))
	}
	if s == "" {
		return "", claimErr(claim, ClaimEmpty, "%s (the subject_claim) is empty", quote(claim))
	}
	return s, nil
}
