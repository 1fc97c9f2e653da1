// Package assertion signs the identity the gateway vouches for: a short-
// lived JWT (ES256 or EdDSA) sent upstream with every request that has a
// session, so that an app reachable some other way than through the gateway
// can still refuse forged identity, and the key set (JWKS) that verifies it.
//
// Signing is off the per-request path: an assertion is signed at most once
// per session per TTL/2 and reused from a bounded cache (cache.go).
package assertion

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/embedgate/embedgate/internal/policy"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/token"
)

// Defaults and limits of Config, documented on the adapter's JSON fields.
const (
	DefaultHeader    = "X-Embed-Assertion"
	DefaultTTL       = 5 * time.Minute
	MaxTTL           = time.Hour
	MinTTL           = 2 * time.Second // TTL/2 must be at least iat's one-second precision
	DefaultCacheSize = 16384
)

// ownClaims are the claims the assertion sets itself; a forwarded claim
// may not take one of their names (CheckClaimPath).
var ownClaims = []string{"iss", "aud", "sub", "tenant", "iat", "exp"}

// Config is what an Issuer needs. Zero values take the defaults above.
type Config struct {
	Header   string        // request header the assertion travels in
	Audience string        // "" means the origin served at (policy.ServedOrigin)
	TTL      time.Duration // lifetime of one assertion
	// Claims are the forward_claim paths, put in the token nested at their
	// own path ("org.id" → {"org": {"id": …}}).
	Claims []string
	// SessionTTL, when set, caps exp at the session's IssuedAt+SessionTTL
	// too (a session_ttl shortened by a reload ends sessions at once).
	SessionTTL time.Duration
	Keys       KeySource
	CacheSize  int              // entries; DefaultCacheSize when 0
	Now        func() time.Time // nil means time.Now
}

// Issuer signs assertions and serves the JWKS; safe for concurrent use.
type Issuer struct {
	cfg    Config
	claims []claimPath // forwarded paths, fewest segments first
	cache  *cache
}

// claimPath is one forwarded claim: its session key and the members it
// nests under.
type claimPath struct {
	key  string
	segs []string
}

// New checks cfg and builds an Issuer.
func New(cfg Config) (*Issuer, error) {
	if cfg.Header == "" {
		cfg.Header = DefaultHeader
	}
	cfg.Header = http.CanonicalHeaderKey(cfg.Header)
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if err := CheckTTL(cfg.TTL); err != nil {
		return nil, err
	}
	if strings.ContainsFunc(cfg.Audience, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, errors.New("assertion: audience holds control characters")
	}
	if cfg.Keys == nil {
		return nil, errors.New("assertion: no key source")
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	i := &Issuer{cfg: cfg, cache: newCache(cfg.CacheSize)}
	for _, p := range cfg.Claims {
		if err := CheckClaimPath(p); err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(i.claims, func(c claimPath) bool { return c.key == p }) {
			i.claims = append(i.claims, claimPath{key: p, segs: segments(p)})
		}
	}
	slices.SortStableFunc(i.claims, func(a, b claimPath) int { return len(a.segs) - len(b.segs) })
	return i, nil
}

// CheckTTL refuses a lifetime outside MinTTL..MaxTTL.
func CheckTTL(d time.Duration) error {
	if d < MinTTL || d > MaxTTL {
		return fmt.Errorf("assertion: ttl %s: must be between %s and %s", d, MinTTL, MaxTTL)
	}
	return nil
}

// CheckClaimPath refuses a forwarded claim whose top-level name is one the
// assertion sets itself: the token's own iss, exp, … must not be replaced.
func CheckClaimPath(p string) error {
	if top := segments(p)[0]; slices.Contains(ownClaims, top) {
		return fmt.Errorf("assertion: forward_claim %q: %q is a claim of the assertion itself", p, top)
	}
	return nil
}

// segments splits a claim path at its dots, as token.Claims.Lookup
// descends; a namespaced claim ("https://example.com/roles", anything with
// ':' or '/') stays one top-level name, as Lookup finds it whole.
func segments(p string) []string {
	if strings.ContainsAny(p, ":/") {
		return []string{p}
	}
	return strings.Split(p, ".")
}

// Header is the request header the assertion is sent in (canonical).
func (i *Issuer) Header() string { return i.cfg.Header }

// JWKS is the current key set, every key public; the first call may create
// a generated key (KeySource).
func (i *Issuer) JWKS() ([]byte, error) {
	ring, err := i.cfg.Keys.Ring()
	if err != nil {
		return nil, err
	}
	return ring.JWKS(), nil
}

// For returns the assertion for a request with the live session s, whose
// kept claims (path → value, as the gateway decoded them) are claims. A
// cached assertion for the same session and origin is reused until TTL/2
// after its iat; errors are *reason.Error with reason.StoreUnavailable
// (a generated key that cannot be loaded).
func (i *Issuer) For(r *http.Request, s *session.Session, claims map[string]any) (string, error) {
	now := i.cfg.Now()
	at := servedAt{host: r.Host, tls: r.TLS != nil, port: policy.LocalPort(r)}
	e, fresh := i.cache.get(s.ID, at, func() string { return policy.ServedOrigin(r) }, now, func() (iat, exp, until time.Time) {
		return i.window(now, s)
	})
	if !fresh {
		<-e.ready // closed already but for a concurrent first request
		return e.tok, e.err
	}
	tok, err := i.sign(e.origin, s, claims, e.iat, e.exp)
	i.cache.done(s.ID, e, tok, err)
	return tok, err
}

// window is an assertion's iat and exp, and until when it is reused.
func (i *Issuer) window(now time.Time, s *session.Session) (iat, exp, until time.Time) {
	iat = now.Truncate(time.Second)
	exp = iat.Add(i.cfg.TTL)
	if exp.After(s.ExpiresAt) {
		exp = s.ExpiresAt
	}
	if i.cfg.SessionTTL > 0 {
		if end := s.IssuedAt.Add(i.cfg.SessionTTL); exp.After(end) {
			exp = end
		}
	}
	until = iat.Add(i.cfg.TTL / 2)
	if until.After(exp) {
		until = exp
	}
	return iat, exp, until
}

// sign builds and signs one assertion.
func (i *Issuer) sign(origin string, s *session.Session, kept map[string]any, iat, exp time.Time) (string, error) {
	ring, err := i.cfg.Keys.Ring()
	if err != nil {
		return "", reason.Ensure(err, reason.StoreUnavailable)
	}
	k := ring.signing()
	tok, err := token.Sign(token.Signer{Alg: k.Alg, KID: k.KID, Key: k.Signer}, i.Claims(origin, s, kept, iat, exp))
	if err != nil {
		return "", reason.Errorf(reason.StoreUnavailable, "signing the assertion: %v", err)
	}
	return tok, nil
}

// Claims is an assertion's claim set, exactly: iss (origin), aud (the
// configured audience, else origin), sub, tenant, iat, exp, and each
// forwarded claim the session holds, nested at its path without the
// members that are not forwarded. A path under one already placed
// ("org.id" beside "org") is inside that value already.
func (i *Issuer) Claims(origin string, s *session.Session, kept map[string]any, iat, exp time.Time) map[string]any {
	aud := i.cfg.Audience
	if aud == "" {
		aud = origin
	}
	out := map[string]any{
		"iss": origin, "aud": aud, "sub": s.Subject, "tenant": s.Tenant,
		"iat": iat.Unix(), "exp": exp.Unix(),
	}
	var placed [][]string
	for _, c := range i.claims {
		v, ok := kept[c.key]
		if !ok || slices.ContainsFunc(placed, func(p []string) bool { return hasPrefix(c.segs, p) }) {
			continue
		}
		placed = append(placed, c.segs)
		m := out
		for _, seg := range c.segs[:len(c.segs)-1] {
			next, ok := m[seg].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[seg] = next
			}
			m = next
		}
		m[c.segs[len(c.segs)-1]] = v
	}
	return out
}

// hasPrefix reports whether path starts with the segments of p.
func hasPrefix(path, p []string) bool {
	return len(p) <= len(path) && slices.Equal(path[:len(p)], p)
}
