// Package tenant holds the tenant registry: who may mint tokens (keys), who
// may frame the app (frame_ancestors), which hosts belong to whom, and where
// an unauthenticated visitor signs in. A Registry is immutable once built, so
// a reload swaps a whole new one in atomically.
package tenant

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"iter"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/embedgate/embedgate/internal/policy"
	"github.com/embedgate/embedgate/internal/session"
)

// Config is one tenant as written in the JSON config (and, later, in a
// tenants file). Secrets arrive here already resolved from placeholders.
type Config struct {
	// ID names the tenant. Tokens carry it as iss and as aud. Required.
	ID string `json:"id"`

	// Keys are HS256 shared secrets, each at least 32 bytes. All of them
	// verify; list a new one beside the old to rotate. Default: none.
	Keys []SecretConfig `json:"keys,omitempty"`

	// PublicKeys verify tokens signed with asymmetric keys: RS256 (RSA of at
	// least 2048 bits), ES256 (P-256) or EdDSA (Ed25519), chosen by the key
	// type. Default: none.
	PublicKeys []PublicKeyConfig `json:"public_keys,omitempty"`

	// FrameAncestors are the origins (https://host[:port]) allowed to frame
	// the app for this tenant, written into CSP frame-ancestors and used for
	// Origin checks. Default: none, so the app cannot be framed.
	FrameAncestors []string `json:"frame_ancestors,omitempty"`

	// Hosts are request hosts that belong to this tenant: a request for one of
	// them accepts only this tenant's tokens and sessions. Default: none (the
	// tenant is chosen by the token's iss or the session).
	Hosts []string `json:"hosts,omitempty"`

	// LoginURL is where a top-level navigation without a session is sent, with
	// ?redirect=<original URL>. Default: none (a 401 gate page instead).
	LoginURL string `json:"login_url,omitempty"`

	// APIKeys are the SHA-256 digests (64 hex digits) of the API keys that may
	// call the token API (POST {prefix}/token) for this tenant; the keys
	// themselves are never stored. List a new digest beside the old to rotate.
	// `embedgate embed-keygen --api-key` makes a key and prints its digest.
	// The token API signs with the tenant's first key (HS256), so a tenant
	// with api_keys needs one. Default: none, so the tenant has no token API.
	APIKeys []string `json:"api_keys,omitempty"`

	// JWKS is the URL of a JSON Web Key Set, such as an identity provider's
	// published signing keys (https; http only for localhost). The set is
	// fetched at start and cached, refreshed after its Cache-Control max-age
	// (clamped to 5m..24h; 1h without one) and on an unknown kid at most once
	// a minute; a failed fetch keeps the last good set. Only RS256 (alg
	// required), ES256 (P-256) and EdDSA (Ed25519) keys are used. It may be
	// combined with keys and public_keys. Default: none.
	JWKS string `json:"jwks,omitempty"`

	// LoginState binds token links (?embed_token=) to the browser that was
	// sent to login_url, with a __Host-embed_login nonce cookie the token's
	// nonce claim must equal: "required", "optional" (a nonce, when the
	// token has one, must match) or "off". Default: optional.
	LoginState string `json:"login_state,omitempty"`

	// SubjectIssuers are identity providers whose access tokens the token
	// API trades for one-time tokens (RFC 8693 token exchange); they need
	// api_keys. Default: none.
	SubjectIssuers []SubjectIssuerConfig `json:"subject_issuers,omitempty"`
}

// SecretConfig is one HS256 secret.
type SecretConfig struct {
	// Secret is the shared secret, at least 32 bytes. Required.
	Secret string `json:"secret"`
	// KID is the key id a token names in its kid header. Default: none.
	KID string `json:"kid,omitempty"`
}

// PublicKeyConfig is one public key, from a PEM file or inline PEM.
type PublicKeyConfig struct {
	// File is the path of a PEM file holding a public key or certificate.
	// {env.*} accepted in the path; {file.*} is not (it would read the file
	// into the path).
	File string `json:"file,omitempty"`
	// PEM is the key itself, as an alternative to File. Default: none.
	PEM string `json:"pem,omitempty"`
	// KID is the key id a token names in its kid header. Default: none.
	KID string `json:"kid,omitempty"`
}

// Signing algorithms, pinned per key.
const (
	HS256 = "HS256"
	RS256 = "RS256"
	ES256 = "ES256"
	EdDSA = "EdDSA"
)

// MinSecretLen is the shortest HS256 secret accepted (RFC 7518 §3.2).
const MinSecretLen = 32

// Key is one verification key with the single algorithm it may verify.
type Key struct {
	KID    string
	Alg    string
	Secret []byte           // HS256
	Public crypto.PublicKey // RS256, ES256, EdDSA
}

// KeySource supplies verification keys that change at run time, such as a
// tenant's JWKS. Implementations must be safe for concurrent use, and must
// treat returned slices as read-only: the verifier takes pointers into them.
type KeySource interface {
	// Keys returns the current keys, each pinned to one Alg. It never waits
	// on the network (a due refresh may start in the background).
	Keys() []Key
	// Lookup returns the key with this kid. When none is known it may first
	// refresh the set, at a bounded rate, and wait for that refresh, but not
	// past ctx (the request's): then it reports the kid unknown.
	Lookup(ctx context.Context, kid string) (Key, bool)
}

// Tenant is a validated tenant.
type Tenant struct {
	ID             string
	Keys           []Key
	FrameAncestors []string // serialized origins
	Hosts          []string // lower-case, no port
	LoginURL       string
	// JWKS is the configured JWKS URL ("" for none); Source serves its keys
	// once the registry has attached one.
	JWKS   string
	Source KeySource
	// LoginState is never "": ParseLoginState's default is optional.
	LoginState     LoginState
	SubjectIssuers []*SubjectIssuer

	ancestors map[string]struct{}
	csp       string
	apiKeys   [][sha256.Size]byte // digests of the token API keys
}

// AllowsOrigin reports whether origin (already normalized with
// policy.NormalizeOrigin) is in the tenant's frame_ancestors.
func (t *Tenant) AllowsOrigin(origin string) bool {
	_, ok := t.ancestors[origin]
	return ok && origin != ""
}

// FrameAncestorsCSP is the precomputed CSP directive for this tenant.
func (t *Tenant) FrameAncestorsCSP() string { return t.csp }

// SigningKey is the key the token API signs with: the tenant's first HS256
// key. New refuses api_keys on a tenant without one.
func (t *Tenant) SigningKey() (Key, bool) {
	for _, k := range t.Keys {
		if k.Alg == HS256 {
			return k, true
		}
	}
	return Key{}, false
}

// AllKeys yields t's verification keys: its static keys in config order,
// then its KeySource's current ones. It never waits on the network. The keys
// are read-only: they point into t and into the KeySource's slice.
func (t *Tenant) AllKeys() iter.Seq[*Key] {
	return func(yield func(*Key) bool) {
		for i := range t.Keys {
			if !yield(&t.Keys[i]) {
				return
			}
		}
		if t.Source == nil {
			return
		}
		src := t.Source.Keys()
		for i := range src {
			if !yield(&src[i]) {
				return
			}
		}
	}
}

// KeyIDs lists the distinct kids of t's keys, in AllKeys order; keys
// without a kid are left out.
func (t *Tenant) KeyIDs() []string {
	var kids []string
	for k := range t.AllKeys() {
		if k.KID != "" && !slices.Contains(kids, k.KID) {
			kids = append(kids, k.KID)
		}
	}
	return kids
}

// Algorithms lists the distinct algorithms t's keys verify, in AllKeys
// order: empty for a tenant whose only keys are a JWKS with no usable key
// yet.
func (t *Tenant) Algorithms() []string {
	var algs []string
	for k := range t.AllKeys() {
		if !slices.Contains(algs, k.Alg) {
			algs = append(algs, k.Alg)
		}
	}
	return algs
}

// MaxIDLen is the longest tenant id, in bytes: the sealed session's limit.
const MaxIDLen = session.MaxTenantLen

// checkID refuses a tenant id that no session cookie can carry, or that
// would break a header, a log line or a key prefix.
func checkID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("tenant: id is required")
	case len(id) > MaxIDLen:
		return fmt.Errorf("tenant %.40q…: id: %d bytes, at most %d (the session cookie and the token's iss and aud carry it)", id, len(id), MaxIDLen)
	case strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("tenant %q: id: control characters are not allowed", id)
	case strings.ContainsAny(id, " :/"):
		return fmt.Errorf("tenant %q: id may not contain spaces, ':' or '/'", id)
	}
	return nil
}

// New validates c and builds a Tenant. Errors name the tenant and the field
// and never quote a secret.
func New(c Config) (*Tenant, error) {
	if err := checkID(c.ID); err != nil {
		return nil, err
	}
	t := &Tenant{ID: c.ID, LoginURL: c.LoginURL, ancestors: map[string]struct{}{}}
	if err := t.addKeys(c); err != nil {
		return nil, err
	}
	if err := t.addAPIKeys(c); err != nil {
		return nil, err
	}
	for _, o := range c.FrameAncestors {
		origin, err := policy.ParseOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("tenant %q: frame_ancestors: %w", c.ID, err)
		}
		if _, dup := t.ancestors[origin]; dup {
			continue
		}
		t.ancestors[origin] = struct{}{}
		t.FrameAncestors = append(t.FrameAncestors, origin)
	}
	t.csp = policy.FrameAncestors(t.FrameAncestors)
	for _, h := range c.Hosts {
		host, err := normalizeHost(h)
		if err != nil {
			return nil, fmt.Errorf("tenant %q: hosts: %w", c.ID, err)
		}
		t.Hosts = append(t.Hosts, host)
	}
	if c.LoginURL != "" {
		u, err := url.Parse(c.LoginURL)
		if err != nil || !policy.SecureURL(u) {
			return nil, fmt.Errorf("tenant %q: login_url %s: must be an absolute https URL (http only for localhost)", c.ID, policy.Shown(c.LoginURL))
		}
	}
	var err error
	if t.LoginState, err = ParseLoginState(c.LoginState); err != nil {
		return nil, fmt.Errorf("tenant %q: login_state %w", c.ID, err)
	}
	if t.SubjectIssuers, err = newSubjectIssuers(c); err != nil {
		return nil, err
	}
	return t, nil
}

// ParseAPIKeyHash reads an api_keys entry: the SHA-256 of an API key as 64
// hex digits, in either case. Errors never quote the value, which may be a
// key pasted by mistake.
func ParseAPIKeyHash(h string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if len(h) != hex.EncodedLen(sha256.Size) {
		return sum, fmt.Errorf("not a SHA-256 digest (%d characters, want 64 hex digits); list the digest that embed-keygen --api-key printed, never the key", len(h))
	}
	if _, err := hex.Decode(sum[:], []byte(strings.ToLower(h))); err != nil {
		return sum, fmt.Errorf("not a SHA-256 digest (64 hex digits expected); list the digest that embed-keygen --api-key printed, never the key")
	}
	return sum, nil
}

// HashAPIKey is the digest stored for an API key.
func HashAPIKey(key string) [sha256.Size]byte { return sha256.Sum256([]byte(key)) }

// checkJWKSURL accepts an absolute https URL (http only for loopback hosts)
// without user info or fragment. The URL is quoted without user info and
// query (policy.ShownURL), either of which could be a credential.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL")
	}
	if u.User != nil {
		return fmt.Errorf("the URL may not hold user info")
	}
	if u.Fragment != "" || !policy.SecureURL(u) {
		return fmt.Errorf("%q: must be an absolute https URL without fragment (http only for localhost)", policy.ShownURL(u))
	}
	return nil
}

func addKID(seen map[string]bool, kid string) error {
	if kid == "" {
		return nil
	}
	if seen[kid] {
		return fmt.Errorf("duplicate kid %q", kid)
	}
	seen[kid] = true
	return nil
}

// Registry maps tenant ids, hosts and API key digests to tenants. It is
// immutable.
type Registry struct {
	byID     map[string]*Tenant
	byHost   map[string]*Tenant
	byAPIKey map[[sha256.Size]byte]*Tenant
}

// Option configures NewRegistry.
type Option func(*registryOptions)

type registryOptions struct {
	keySource func(tenantID, url string) (KeySource, error)
}

// WithKeySources gives NewRegistry the constructor of the KeySource for a
// jwks URL of a tenant: its own, or one of its subject issuers'. Without
// it, a tenant with jwks is a config error.
func WithKeySources(f func(tenantID, url string) (KeySource, error)) Option {
	return func(o *registryOptions) { o.keySource = f }
}

// NewRegistry validates every config and refuses the whole set on the first
// error: a duplicate id, host or API key digest, or any invalid tenant.
func NewRegistry(cfgs []Config, opts ...Option) (*Registry, error) {
	var o registryOptions
	for _, opt := range opts {
		opt(&o)
	}
	r := &Registry{byID: make(map[string]*Tenant, len(cfgs)), byHost: map[string]*Tenant{}, byAPIKey: map[[sha256.Size]byte]*Tenant{}}
	for _, c := range cfgs {
		t, err := New(c)
		if err != nil {
			return nil, err
		}
		if _, dup := r.byID[t.ID]; dup {
			return nil, fmt.Errorf("tenant %q: duplicate tenant id", t.ID)
		}
		r.byID[t.ID] = t
		for _, h := range t.Hosts {
			if other, dup := r.byHost[h]; dup {
				return nil, fmt.Errorf("tenant %q: hosts: host %q already belongs to tenant %q", t.ID, h, other.ID)
			}
			r.byHost[h] = t
		}
		for i, sum := range t.apiKeys {
			if other, dup := r.byAPIKey[sum]; dup {
				return nil, fmt.Errorf("tenant %q: api_keys #%d: the same key is listed by tenant %q", t.ID, i+1, other.ID)
			}
			r.byAPIKey[sum] = t
		}
		if t.JWKS != "" {
			if o.keySource == nil {
				return nil, fmt.Errorf("tenant %q: jwks: no JWKS fetcher is available here", t.ID)
			}
			if t.Source, err = o.keySource(t.ID, t.JWKS); err != nil {
				return nil, fmt.Errorf("tenant %q: jwks: %w", t.ID, err)
			}
		}
		if err := attachSubjectSources(t, o.keySource); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// ByAPIKey returns the tenant that lists the digest of key in api_keys. The
// map is keyed by the digest, so lookup is O(1) and its timing depends only
// on the digest of the presented key, never on a stored key; the match is
// then confirmed with a constant-time comparison.
func (r *Registry) ByAPIKey(key string) (*Tenant, bool) {
	if key == "" {
		return nil, false
	}
	sum := HashAPIKey(key)
	t, ok := r.byAPIKey[sum]
	if !ok {
		return nil, false
	}
	for _, k := range t.apiKeys {
		if subtle.ConstantTimeCompare(k[:], sum[:]) == 1 {
			return t, true
		}
	}
	return nil, false
}

// IDs returns the tenant ids, sorted.
func (r *Registry) IDs() []string {
	ids := make([]string, 0, len(r.byID))
	for id := range r.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// ByID returns the tenant with this id.
func (r *Registry) ByID(id string) (*Tenant, bool) {
	t, ok := r.byID[id]
	return t, ok
}

// ByHost returns the tenant that owns host (lower-case, no port).
func (r *Registry) ByHost(host string) (*Tenant, bool) {
	t, ok := r.byHost[host]
	return t, ok
}

// Len is the number of tenants.
func (r *Registry) Len() int { return len(r.byID) }
