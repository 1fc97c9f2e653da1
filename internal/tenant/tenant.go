// Package tenant holds the tenant registry: who may mint tokens (keys), who
// may frame the app (frame_ancestors), which hosts belong to whom, and where
// an unauthenticated visitor signs in. A Registry is immutable once built, so
// a reload swaps a whole new one in atomically.
package tenant

import (
	"crypto"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/embedgate/embedgate/internal/policy"
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

// Tenant is a validated tenant.
type Tenant struct {
	ID             string
	Keys           []Key
	FrameAncestors []string // serialized origins
	Hosts          []string // lower-case, no port
	LoginURL       string

	ancestors map[string]struct{}
	csp       string
}

// AllowsOrigin reports whether origin (already normalized with
// policy.NormalizeOrigin) is in the tenant's frame_ancestors.
func (t *Tenant) AllowsOrigin(origin string) bool {
	_, ok := t.ancestors[origin]
	return ok && origin != ""
}

// FrameAncestorsCSP is the precomputed CSP directive for this tenant.
func (t *Tenant) FrameAncestorsCSP() string { return t.csp }

// New validates c and builds a Tenant. Errors name the tenant and the field
// and never quote a secret.
func New(c Config) (*Tenant, error) {
	if c.ID == "" {
		return nil, fmt.Errorf("tenant: id is required")
	}
	if strings.ContainsAny(c.ID, " \t\r\n:/") {
		return nil, fmt.Errorf("tenant %q: id may not contain spaces, ':' or '/'", c.ID)
	}
	t := &Tenant{ID: c.ID, LoginURL: c.LoginURL, ancestors: map[string]struct{}{}}
	kids := map[string]bool{}
	for i, k := range c.Keys {
		if len(k.Secret) < MinSecretLen {
			return nil, fmt.Errorf("tenant %q: key #%d: secret is %d bytes, at least %d required", c.ID, i+1, len(k.Secret), MinSecretLen)
		}
		if err := addKID(kids, k.KID); err != nil {
			return nil, fmt.Errorf("tenant %q: key #%d: %v", c.ID, i+1, err)
		}
		t.Keys = append(t.Keys, Key{KID: k.KID, Alg: HS256, Secret: []byte(k.Secret)})
	}
	for i, p := range c.PublicKeys {
		key, err := loadPublicKey(p)
		if err != nil {
			return nil, fmt.Errorf("tenant %q: public_key #%d: %v", c.ID, i+1, err)
		}
		if err := addKID(kids, p.KID); err != nil {
			return nil, fmt.Errorf("tenant %q: public_key #%d: %v", c.ID, i+1, err)
		}
		t.Keys = append(t.Keys, key)
	}
	if len(t.Keys) == 0 {
		return nil, fmt.Errorf("tenant %q: no key: add key or public_key", c.ID)
	}
	for _, o := range c.FrameAncestors {
		origin, err := policy.ParseOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("tenant %q: frame_ancestors: %v", c.ID, err)
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
			return nil, fmt.Errorf("tenant %q: hosts: %v", c.ID, err)
		}
		t.Hosts = append(t.Hosts, host)
	}
	if c.LoginURL != "" {
		u, err := url.Parse(c.LoginURL)
		if err != nil || u.Host == "" || !(u.Scheme == "https" || (u.Scheme == "http" && policy.IsLoopbackHost(u.Hostname()))) {
			return nil, fmt.Errorf("tenant %q: login_url %q: must be an absolute https URL (http only for localhost)", c.ID, c.LoginURL)
		}
	}
	return t, nil
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

// normalizeHost lower-cases a host and drops a port; it refuses URLs.
func normalizeHost(h string) (string, error) {
	if h == "" || strings.ContainsAny(h, "/*@ ") {
		return "", fmt.Errorf("host %q: a bare host name is expected", h)
	}
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), "."), nil
}

// HostOf returns the lower-case host of a request's Host header, without port.
func HostOf(hostport string) string {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		hostport = host
	}
	return strings.TrimSuffix(strings.ToLower(strings.Trim(hostport, "[]")), ".")
}

// Registry maps tenant ids and hosts to tenants. It is immutable.
type Registry struct {
	byID   map[string]*Tenant
	byHost map[string]*Tenant
}

// NewRegistry validates every config and refuses the whole set on the first
// error: a duplicate id or host, or any invalid tenant.
func NewRegistry(cfgs []Config) (*Registry, error) {
	r := &Registry{byID: make(map[string]*Tenant, len(cfgs)), byHost: map[string]*Tenant{}}
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
	}
	return r, nil
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
