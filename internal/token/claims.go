package token

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/embedgate/embedgate/internal/reason"
)

// maxNumericDate is 9999-12-31T23:59:59Z. Larger (or negative) dates are
// refused as malformed: they are never legitimate and could overflow time
// arithmetic.
const maxNumericDate = 253402300799

// Claims are the verified claims of a token.
type Claims struct {
	// Issuer is iss: the tenant id.
	Issuer string
	// Subject is sub: the user, as the customer names them.
	Subject string
	// ID is jti: single-use, see Verifier.ReplayTTL.
	ID string
	// Audience is aud, normalized to a slice; always exactly [tenant id].
	Audience []string
	// IssuedAt is iat.
	IssuedAt time.Time
	// ExpiresAt is exp.
	ExpiresAt time.Time
	// NotBefore is nbf; the zero time when the token has none.
	NotBefore time.Time
	// Raw holds every claim as decoded, numbers as json.Number.
	Raw map[string]any
}

// checkClaims applies the claim rules after the signature has verified, in
// this order (the first failure wins):
//  1. aud: absent → missing_claim; not exactly tenantID or [tenantID] →
//     wrong_audience;
//  2. sub, then jti: absent or "" → missing_claim; not a string → malformed;
//  3. iat, then exp: absent → missing_claim; not a number in
//     [0, 9999-12-31] → malformed; then nbf, if present, likewise;
//  4. exp <= iat → malformed;
//  5. exp - iat > MaxTokenAge → lifetime_too_long;
//  6. iat > now + Leeway → issued_in_future;
//  7. nbf > now + Leeway → not_yet_valid;
//  8. exp + Leeway <= now → expired.
//
// The structural rules come before the clock so that a rejection names what
// is wrong with the token itself, not how late it arrived.
func (v *Verifier) checkClaims(p map[string]any, tenantID string) (Claims, error) {
	c := Claims{Raw: p}
	var err error
	if c.Audience, err = audience(p, tenantID); err != nil {
		return Claims{}, err
	}
	if c.Subject, err = requiredString(p, "sub"); err != nil {
		return Claims{}, err
	}
	if c.ID, err = requiredString(p, "jti"); err != nil {
		return Claims{}, err
	}
	if c.IssuedAt, err = numericDate(p, "iat", true); err != nil {
		return Claims{}, err
	}
	if c.ExpiresAt, err = numericDate(p, "exp", true); err != nil {
		return Claims{}, err
	}
	if c.NotBefore, err = numericDate(p, "nbf", false); err != nil {
		return Claims{}, err
	}
	if !c.ExpiresAt.After(c.IssuedAt) {
		return Claims{}, claimErr("exp", ClaimNotAfterIssued, "exp is not after iat")
	}
	if life := c.ExpiresAt.Sub(c.IssuedAt); life > v.maxAge() {
		return Claims{}, reason.Errorf(reason.LifetimeTooLong, "exp - iat is %s, limit %s", life, v.maxAge())
	}
	now, leeway := v.now(), v.leeway()
	horizon := now.Add(leeway)
	if c.IssuedAt.After(horizon) {
		return Claims{}, reason.Errorf(reason.IssuedInFuture, "iat is %s ahead of the clock (leeway %s)", c.IssuedAt.Sub(now), leeway)
	}
	if !c.NotBefore.IsZero() && c.NotBefore.After(horizon) {
		return Claims{}, reason.Errorf(reason.NotYetValid, "nbf is %s ahead of the clock (leeway %s)", c.NotBefore.Sub(now), leeway)
	}
	if !c.ExpiresAt.Add(leeway).After(now) {
		return Claims{}, reason.Errorf(reason.Expired, "expired %s ago (leeway %s)", now.Sub(c.ExpiresAt), leeway)
	}
	return c, nil
}

// audience accepts aud only as the tenant id or a one-element array of it:
// a token meant for several audiences is not a one-shot token for us.
func audience(p map[string]any, tenantID string) ([]string, error) {
	v, ok := p["aud"]
	if !ok {
		return nil, claimErr("aud", ClaimAbsent, "aud is required")
	}
	switch a := v.(type) {
	case string:
		if a == tenantID {
			return []string{a}, nil
		}
		return nil, reason.Errorf(reason.WrongAudience, "aud %s, want %s", quote(a), quote(tenantID))
	case []any:
		if len(a) == 1 {
			if s, ok := a[0].(string); ok && s == tenantID {
				return []string{s}, nil
			}
		}
		return nil, reason.Errorf(reason.WrongAudience, "aud must be exactly [%s] (got %d element(s))", quote(tenantID), len(a))
	}
	return nil, reason.Errorf(reason.WrongAudience, "aud is neither a string nor an array")
}

// requiredString reads a claim that must be a non-empty string. The detail
// names the claim, never its value.
func requiredString(p map[string]any, name string) (string, error) {
	v, ok := p[name]
	if !ok {
		return "", claimErr(name, ClaimAbsent, "%s is required", name)
	}
	s, ok := v.(string)
	if !ok {
		return "", claimErr(name, ClaimNotString, "%s is not a string", name)
	}
	if s == "" {
		return "", claimErr(name, ClaimEmpty, "%s is empty", name)
	}
	return s, nil
}

// numericDate reads a NumericDate claim (RFC 7519 §2: seconds since the
// epoch, possibly fractional). Absent gives the zero time, or missing_claim
// when required.
func numericDate(p map[string]any, name string, required bool) (time.Time, error) {
	v, ok := p[name]
	if !ok {
		if required {
			return time.Time{}, claimErr(name, ClaimAbsent, "%s is required", name)
		}
		return time.Time{}, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, claimErr(name, ClaimNotNumber, "%s is not a number", name)
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, claimErr(name, ClaimOutOfRange, "%s is out of range", name)
	}
	sec := math.Floor(f)
	nsec := math.Round((f - sec) * 1e9)
	return time.Unix(int64(sec), int64(nsec)).UTC(), nil
}

// MaxLeeway bounds the clock skew allowed on a token's exp, nbf and iat (and
// between instances): a token is good for its lifetime plus the leeway, so a
// larger one would undo max_token_age (with leeway 24h, a 60-second token
// verified for a day).
const MaxLeeway = 5 * time.Minute

// ReplayTTL is how long the jti must stay used: the whole window in which the
// token could still verify anywhere it is shared. An instance sharing the
// store accepts it until exp + its own leeway by its own clock, which may be
// behind by up to that leeway; so the jti is kept until exp + 2·MaxLeeway,
// measured from Now, whatever this instance's leeway. Keeping it for
// exp + 2·(this leeway) let a handler with a larger leeway (another site in
// the process, another instance on the Redis, or this one after a reload
// that raised it) exchange a used token again once the store forgot it. It
// is rounded up to a whole second (stores such as Redis count in seconds)
// and is never below 1s, so even an almost-expired token is recorded.
func (v *Verifier) ReplayTTL(c Claims) time.Duration {
	d := c.ExpiresAt.Add(2 * MaxLeeway).Sub(v.now())
	if d < time.Second {
		return time.Second
	}
	if r := d % time.Second; r != 0 && d < math.MaxInt64-time.Second {
		d += time.Second - r
	}
	return d
}

// Lookup finds a claim by dotted path ("org.id", "groups") in c.Raw. A
// top-level claim whose name is exactly path wins, so namespaced claims such
// as "https://example.com/roles" stay reachable; otherwise each dot descends
// into a JSON object. Arrays are returned whole, not indexed.
func (c Claims) Lookup(path string) (any, bool) {
	if path == "" || c.Raw == nil {
		return nil, false
	}
	if v, ok := c.Raw[path]; ok {
		return v, true
	}
	var cur any = c.Raw
	for part := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// CheckSubject holds a subject to what the gateway keys sessions and
// revocations on and the app reads back unchanged from X-Embed-Subject: no
// control character (a tab included) and no space at either end, which
// every HTTP parser trims (RFC 9110 §5.5). A sub of "jane " would be
// another user to the gateway, whose revocations of jane miss it, and jane
// to the app. Emptiness is the verifier's missing_claim.
func CheckSubject(sub string) error {
	for i := 0; i < len(sub); i++ {
		if c := sub[i]; c < 0x20 || c == 0x7f {
			return reason.Errorf(reason.Malformed, "sub holds control characters")
		}
	}
	if sub != "" && (sub[0] == ' ' || sub[len(sub)-1] == ' ') {
		return reason.Errorf(reason.Malformed, "sub starts or ends with a space, which an HTTP header drops")
	}
	return nil
}
