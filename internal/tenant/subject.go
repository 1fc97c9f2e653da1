package tenant

import (
	"fmt"
	"net/url"
	"slices"

	"github.com/embedgate/embedgate/internal/policy"
)

// LoginState is how a tenant binds token links (?embed_token=) to the
// browser that was sent to its login_url, as OAuth's state does.
type LoginState string

// The login_state values.
const (
	// LoginStateOptional (the default) sets the login-state cookie and
	// checks a token's nonce when it carries one.
	LoginStateOptional LoginState = "optional"
	// LoginStateRequired accepts a token link only with a nonce equal to the
	// browser's login-state cookie.
	LoginStateRequired LoginState = "required"
	// LoginStateOff sets no cookie and checks nothing.
	LoginStateOff LoginState = "off"
)

// ParseLoginState reads a login_state value; "" is the default, optional.
func ParseLoginState(s string) (LoginState, error) {
	switch v := LoginState(s); v {
	case "":
		return LoginStateOptional, nil
	case LoginStateOptional, LoginStateRequired, LoginStateOff:
		return v, nil
	}
	return "", fmt.Errorf("%q: want required, optional or off", s)
}

// SubjectIssuerConfig is an identity provider whose access tokens the token
// API trades for one-time tokens (RFC 8693 token exchange).
type SubjectIssuerConfig struct {
	// Issuer is the provider's iss, exactly as its tokens carry it (an https
	// URL; http only for localhost). Required.
	Issuer string `json:"issuer"`
	// JWKS is the URL of the provider's key set, fetched and cached as the
	// tenant's own jwks is (https; http only for localhost). Default: none.
	JWKS string `json:"jwks,omitempty"`
	// PublicKeys are the provider's keys from PEM, beside or instead of
	// JWKS; RS256, ES256 or EdDSA by key type. Default: none.
	PublicKeys []PublicKeyConfig `json:"public_keys,omitempty"`
	// Audiences are accepted values of the access token's aud: it must
	// contain one of them. Required.
	Audiences []string `json:"audiences,omitempty"`
	// SubjectClaim is the claim of the access token that becomes the one-time
	// token's sub, a dotted path ("email"). Default: sub.
	SubjectClaim string `json:"subject_claim,omitempty"`
	// CopyClaims are the access token's top-level claims copied, by exact
	// name, into the one-time token; no other claim of it is. Default: none.
	CopyClaims []string `json:"copy_claims,omitempty"`
}

// SubjectIssuer is a validated subject_issuer.
type SubjectIssuer struct {
	Issuer string
	Keys   []Key
	// JWKS is the configured key set URL ("" for none); Source serves its
	// keys once the registry has attached one.
	JWKS         string
	Source       KeySource
	Audiences    []string
	SubjectClaim string
	CopyClaims   []string
}

// SubjectIssuer is t's subject_issuer whose Issuer is exactly iss.
func (t *Tenant) SubjectIssuer(iss string) (*SubjectIssuer, bool) {
	for _, s := range t.SubjectIssuers {
		if s.Issuer == iss {
			return s, true
		}
	}
	return nil, false
}

// reservedClaims are the claims a minted token gets from the gateway itself
// (token.RegisteredClaims, policy.ScopeClaims, nonce, allowed_origins): copy_claims
// may not name them. A test in package token holds this list to
// token.RegisteredClaims.
var reservedClaims = append([]string{"iss", "aud", "sub", "iat", "exp", "nbf", "jti", "nonce", "allowed_origins"}, policy.ScopeClaims()...)

// newSubjectIssuers validates c's subject_issuers. Errors name the tenant
// and the issuer.
func newSubjectIssuers(c Config) ([]*SubjectIssuer, error) {
	if len(c.SubjectIssuers) > 0 && len(c.APIKeys) == 0 {
		return nil, fmt.Errorf("tenant %q: subject_issuer: the token exchange is a token API call; add api_key", c.ID)
	}
	var out []*SubjectIssuer
	for i, sc := range c.SubjectIssuers {
		s, err := newSubjectIssuer(sc)
		if err != nil {
			name := fmt.Sprintf("#%d", i+1)
			if sc.Issuer != "" {
				name = policy.Shown(sc.Issuer) // without user info or query: a credential
			}
			return nil, fmt.Errorf("tenant %q: subject_issuer %s: %w", c.ID, name, err)
		}
		if slices.ContainsFunc(out, func(o *SubjectIssuer) bool { return o.Issuer == s.Issuer }) {
			return nil, fmt.Errorf("tenant %q: subject_issuer %q: listed twice", c.ID, s.Issuer)
		}
		out = append(out, s)
	}
	return out, nil
}

func newSubjectIssuer(c SubjectIssuerConfig) (*SubjectIssuer, error) {
	if err := checkIssuer(c.Issuer); err != nil {
		return nil, err
	}
	s := &SubjectIssuer{Issuer: c.Issuer, SubjectClaim: c.SubjectClaim}
	kids := map[string]bool{}
	for i, p := range c.PublicKeys {
		key, err := loadPublicKey(p)
		if err != nil {
			return nil, fmt.Errorf("public_key #%d: %w", i+1, err)
		}
		if err := addKID(kids, p.KID); err != nil {
			return nil, fmt.Errorf("public_key #%d: %w", i+1, err)
		}
		s.Keys = append(s.Keys, key)
	}
	if c.JWKS != "" {
		if err := checkJWKSURL(c.JWKS); err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
		s.JWKS = c.JWKS
	}
	if len(s.Keys) == 0 && s.JWKS == "" {
		return nil, fmt.Errorf("no key: add jwks or public_key")
	}
	if len(c.Audiences) == 0 {
		return nil, fmt.Errorf("audience is required: the access token's aud must contain one of them")
	}
	for _, a := range c.Audiences {
		if a == "" {
			return nil, fmt.Errorf("audience: an empty audience")
		}
		if !slices.Contains(s.Audiences, a) {
			s.Audiences = append(s.Audiences, a)
		}
	}
	if s.SubjectClaim == "" {
		s.SubjectClaim = "sub"
	}
	for _, name := range c.CopyClaims {
		switch {
		case name == "":
			return nil, fmt.Errorf("copy_claims: an empty claim name")
		case slices.Contains(reservedClaims, name):
			return nil, fmt.Errorf("copy_claims: %s is set by the gateway, not copied", name)
		case slices.Contains(s.CopyClaims, name):
			return nil, fmt.Errorf("copy_claims: %s listed twice", name)
		}
		s.CopyClaims = append(s.CopyClaims, name)
	}
	return s, nil
}

// checkIssuer accepts an issuer identifier as OpenID Connect defines it: an
// absolute https URL (http only for loopback hosts) without user info,
// query or fragment.
func checkIssuer(iss string) error {
	if iss == "" {
		return fmt.Errorf("the issuer is required")
	}
	u, err := url.Parse(iss)
	if err != nil || u.User != nil || u.RawQuery != "" || u.Fragment != "" || !policy.SecureURL(u) {
		return fmt.Errorf("must be an absolute https URL without query or fragment (http only for localhost)")
	}
	return nil
}

// attachSubjectSources gives each of t's subject issuers with a jwks the
// KeySource that newSource builds for it.
func attachSubjectSources(t *Tenant, newSource func(tenantID, url string) (KeySource, error)) error {
	for _, s := range t.SubjectIssuers {
		if s.JWKS == "" {
			continue
		}
		if newSource == nil {
			return fmt.Errorf("tenant %q: subject_issuer %q: jwks: no JWKS fetcher is available here", t.ID, s.Issuer)
		}
		src, err := newSource(t.ID, s.JWKS)
		if err != nil {
			return fmt.Errorf("tenant %q: subject_issuer %q: jwks: %w", t.ID, s.Issuer, err)
		}
		s.Source = src
	}
	return nil
}
