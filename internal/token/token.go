// Package token verifies the SSO tokens that customers' backends mint for the
// embed exchange. It follows RFC 8725 (JWT best current practices): a fixed
// algorithm allowlist pinned per key, no key material taken from the token,
// explicit typing, strict decoding, and every claim rule checked with an
// injected clock so that each rejection carries a typed reason.
//
// The order of checks is fixed and documented on [Verifier.Verify]: structure
// first, then the header, then iss (tenant selection), then the signature,
// and only then the remaining claims, so that an unsigned token learns nothing
// beyond whether its iss and header are acceptable.
package token

import (
	"strconv"
	"time"

	"github.com/embedgate/embedgate/internal/tenant"
)

// MaxTokenSize is the longest token accepted, in bytes. Longer tokens are
// refused (reason malformed) before any decoding, so a hostile client cannot
// make the gateway base64- or JSON-decode large inputs.
const MaxTokenSize = 8 << 10

// DefaultMaxTokenAge is the bound on exp - iat used when
// Verifier.MaxTokenAge is zero: SSO tokens are one-shot and short-lived.
const DefaultMaxTokenAge = 120 * time.Second

// Tenants looks tenants up by id. *tenant.Registry satisfies it; the
// interface lets a caller hand in whichever registry snapshot it holds.
type Tenants interface {
	ByID(id string) (*tenant.Tenant, bool)
}

// Verifier checks SSO tokens. The zero value is usable (120 s lifetime bound,
// no leeway, the system clock). A Verifier is safe for concurrent use as long
// as its fields are not changed while it is in use.
type Verifier struct {
	// MaxTokenAge is the upper bound on exp - iat. Zero or negative means
	// DefaultMaxTokenAge.
	MaxTokenAge time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat. Zero means none;
	// negative is treated as zero. The caller sets the 30 s default.
	Leeway time.Duration
	// Now returns the current time. Nil means time.Now. Tests inject a clock.
	Now func() time.Time
}

// Result is a verified token: the tenant it belongs to and its claims.
type Result struct {
	Tenant *tenant.Tenant
	Claims Claims
	// keyID is the KID of the key whose signature check succeeded (empty
	// when that key has no KID) and alg the header alg, which always equals
	// that key's Alg. Nothing outside the tests reads them: they prove which
	// key verified a token.
	keyID, alg string
}

func (v *Verifier) maxAge() time.Duration {
	if v == nil || v.MaxTokenAge <= 0 {
		return DefaultMaxTokenAge
	}
	return v.MaxTokenAge
}

func (v *Verifier) leeway() time.Duration {
	if v == nil || v.Leeway < 0 {
		return 0
	}
	return v.Leeway
}

func (v *Verifier) now() time.Time {
	if v == nil || v.Now == nil {
		return time.Now()
	}
	return v.Now()
}

// quote renders a token-supplied value (iss, aud, kid, alg) for an error
// detail: quoted so control characters cannot forge log lines, and cut short
// so an attacker cannot fill logs with an 8 KiB "issuer".
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}
