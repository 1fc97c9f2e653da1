// Package caddymodule adapts embedgate to Caddy: it registers the
// http.handlers.embed_session module and the embed_session Caddyfile
// directive, provisions the core (internal/...) from the JSON config, and
// wires the request flow into Caddy's handler chain. It holds no logic of its
// own beyond that wiring.
package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/tenant"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults, as documented on the fields: the core's.
const (
	DefaultSessionTTL  = gateway.DefaultSessionTTL
	DefaultIdleTimeout = gateway.DefaultIdleTimeout
	DefaultMaxTokenAge = gateway.DefaultMaxTokenAge
	DefaultLeeway      = gateway.DefaultLeeway
	DefaultCookieName  = gateway.DefaultCookieName
	DefaultPrefix      = gateway.DefaultPrefix
	DefaultTokenParam  = gateway.DefaultTokenParam
)

// Handler exchanges one-time SSO tokens for a sealed session cookie, guards
// every request with that session, sends verified identity headers upstream
// and sets frame-ancestors on every response.
type Handler struct {
	// Tenants are the customers whose pages may embed the app, each with the
	// keys that verify its tokens. At least one is required.
	Tenants []tenant.Config `json:"tenants,omitempty"`

	// SessionKeys seal session cookies; each at least 32 bytes, {env.*} and
	// {file.*} placeholders accepted. The first seals, all open, so a new key
	// goes first to rotate. Default: a key generated once and kept in Caddy's
	// configured storage.
	SessionKeys []string `json:"session_keys,omitempty"`

	// SessionTTL is the absolute lifetime of a session. At most 720h (30
	// days), the span an admin revocation lasts on every instance.
	// Default: 8h.
	SessionTTL caddy.Duration `json:"session_ttl,omitempty"`

	// IdleTimeout ends a session not used for this long; the cookie is
	// re-sealed when more than half of it has passed. Default: 30m.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`

	// MaxTokenAge is the upper bound on a token's exp - iat. Default: 120s.
	MaxTokenAge caddy.Duration `json:"max_token_age,omitempty"`

	// Leeway is the clock skew allowed on exp, nbf and iat, and between
	// instances sharing a store. Default: 30s; at most 5m (MaxLeeway).
	Leeway caddy.Duration `json:"leeway,omitempty"`

	// CookieName is the session cookie's name. Default: __Host-embed_session.
	CookieName string `json:"cookie_name,omitempty"`

	// Prefix is the path under which the gateway's own endpoints live
	// (exchange, signout, session). Default: /.embed.
	Prefix string `json:"prefix,omitempty"`

	// TokenParam is the query parameter that carries a token on a GET; the
	// gateway exchanges it and redirects to the URL without it.
	// Default: embed_token.
	TokenParam string `json:"token_param,omitempty"`

	// ForwardClaims send token claims upstream as headers (strings as is,
	// other values as compact JSON). Default: none.
	ForwardClaims []ForwardClaim `json:"forward_claims,omitempty"`

	// Require lists rules every request's session must meet, else 403.
	// Default: none.
	Require []Requirement `json:"require,omitempty"`

	// TenantsFile is a JSON file ({"tenants": [...]}, the same objects as
	// Tenants) loaded beside the inline tenants and watched: a valid new
	// version applies within about a second; an invalid one is refused whole
	// and logged. {env.*} accepted. Default: none.
	TenantsFile string `json:"tenants_file,omitempty"`

	// MetricsPerTenant adds a tenant label to embedgate_exchanges_total and
	// embedgate_requests_total. It multiplies their series by the number of
	// tenants. Default: false.
	MetricsPerTenant bool `json:"metrics_per_tenant,omitempty"`

	// Store is where single-use token ids and revocations live. Default:
	// memory, which holds for one process (and survives config reloads).
	Store *StoreConfig `json:"store,omitempty"`

	// InjectBridge adds <script src="{prefix}/bridge.js" defer> before
	// </body> of the upstream's HTML responses to document navigations
	// (uncompressed, up to 8 MiB), so the app tells the host page its height
	// and path without including the script itself. A strict upstream CSP
	// keeps working and is never widened: its nonce is reused, or a fresh
	// nonce is added, or, beside 'unsafe-inline', the script's exact URL.
	// Default: false.
	InjectBridge bool `json:"inject_bridge,omitempty"`

	// CaddyErrors returns refusals of requests into the app (401 without a
	// session on a non-navigation request, 403 for a cross-origin unsafe
	// request or a failed require rule) as Caddy errors, so handle_errors
	// runs, with {http.error.status_code} and {http.embed.reason} (the typed
	// reason). The gateway's own endpoints, the login redirect and the gate
	// page (which talks to the host page) are answered as usual. The
	// refusal's framing CSP and cookie clearing are already set.
	// Default: false.
	CaddyErrors bool `json:"caddy_errors,omitempty"`

	// Assertion sends the app a signed identity with every request that
	// has a session: a short-lived ES256/EdDSA JWT (header, audience, ttl,
	// keys: see AssertionConfig), verifiable against {prefix}/jwks.json.
	// An empty object turns it on with the defaults. Default: off.
	Assertion *AssertionConfig `json:"assertion,omitempty"`

	gw      *gateway.Gateway
	tenants *tenantSet // the live registry, read by the admin API
	logger  *zap.Logger
	pooled  []string // usage pool keys released in Cleanup
}

// ForwardClaim sends one claim upstream as a header.
type ForwardClaim struct {
	// Claim is a dotted path into the token's claims, e.g. "org.id".
	// Required.
	Claim string `json:"claim"`
	// Header is the request header it is sent in, e.g. "X-Embed-Org"; not
	// a reserved one (Cookie, Host, Authorization, the tenant and subject
	// headers). Required.
	Header string `json:"header"`
}

// Requirement is one require rule: a scope, or a claim with a value.
type Requirement struct {
	// Scope must appear in the token's scope (space-separated) or scp claim.
	// Set this or Claim, not both. Default: none.
	Scope string `json:"scope,omitempty"`
	// Claim is a dotted claim path that must equal Value (or, for an array
	// claim, contain it). Set this or Scope, not both. Default: none.
	Claim string `json:"claim,omitempty"`
	// Value is what Claim must equal; it may hold request placeholders,
	// e.g. {http.request.uri.path.1}. Required with Claim; refused with
	// Scope. Default: none.
	Value string `json:"value,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.embed_session",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets defaults, resolves secrets and builds the core.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.setDefaults()
	// Caddy calls Validate after Provision, which dials Redis and fetches
	// key sets: every check that needs no network runs first, so a bad
	// config fails in milliseconds.
	if err := h.Validate(); err != nil {
		return err
	}
	if _, _, err := h.storePlan(); err != nil {
		return err
	}
	warnCookiePrefix(h.logger, h.CookieName)
	repl := caddy.NewReplacer()
	if err := registerMetrics(ctx); err != nil {
		return err
	}

	// The session keys and assertion key files are checked before the
	// tenants' JWKS are fetched: they need no network.
	sealer, err := h.provisionSealer(ctx, repl)
	if err != nil {
		return err
	}
	var st certmagic.Storage // read only for a generated assertion key
	if h.Assertion != nil && len(h.Assertion.Keys) == 0 {
		st = ctx.Storage()
	}
	assertions, err := h.provisionAssertion(st)
	if err != nil {
		return err
	}
	tenants, err := h.provisionTenants(ctx, repl)
	if err != nil {
		return err
	}

	store, revocations, err := h.provisionStore(ctx)
	if err != nil {
		return err
	}

	fwd, req := h.gatewayForwardClaims(), h.gatewayRequire()
	h.gw, err = gateway.New(gateway.Config{
		Tenants:        tenants.load,
		Sealer:         sealer,
		Replay:         store,
		Revocations:    revocations,
		SessionTTL:     time.Duration(h.SessionTTL),
		IdleTimeout:    time.Duration(h.IdleTimeout),
		MaxTokenAge:    time.Duration(h.MaxTokenAge),
		Leeway:         time.Duration(h.Leeway),
		CookieName:     h.CookieName,
		Prefix:         h.Prefix,
		TokenParam:     h.TokenParam,
		InjectBridge:   h.InjectBridge,
		ReturnRefusals: h.CaddyErrors,
		Assertions:     assertions,
		ForwardClaims:  fwd,
		Require:        req,
		Audit:          h.audit,
		Expand:         expand,
		OnSession:      setPlaceholders,
		Observer:       newObserver(h.MetricsPerTenant),
		OnTokenInURL:   skipAccessLog,
	})
	return err
}

func (h *Handler) setDefaults() {
	if h.SessionTTL == 0 {
		h.SessionTTL = caddy.Duration(DefaultSessionTTL)
	}
	if h.IdleTimeout == 0 {
		h.IdleTimeout = caddy.Duration(DefaultIdleTimeout)
	}
	if h.MaxTokenAge == 0 {
		h.MaxTokenAge = caddy.Duration(DefaultMaxTokenAge)
	}
	if h.Leeway == 0 {
		h.Leeway = caddy.Duration(DefaultLeeway)
	}
	if h.CookieName == "" {
		h.CookieName = DefaultCookieName
	}
	if h.Prefix == "" {
		h.Prefix = DefaultPrefix
	}
	if h.TokenParam == "" {
		h.TokenParam = DefaultTokenParam
	}
}

// gatewayForwardClaims is h's forward_claims for the core.
func (h *Handler) gatewayForwardClaims() []gateway.ForwardClaim {
	fwd := make([]gateway.ForwardClaim, len(h.ForwardClaims))
	for i, fc := range h.ForwardClaims {
		fwd[i] = gateway.ForwardClaim{Claim: fc.Claim, Header: http.CanonicalHeaderKey(fc.Header)}
	}
	return fwd
}

// gatewayRequire is h's require rules as the core takes them.
func (h *Handler) gatewayRequire() []gateway.Requirement {
	req := make([]gateway.Requirement, len(h.Require))
	for i, rq := range h.Require {
		req[i] = gateway.Requirement{Scope: rq.Scope, Claim: rq.Claim, Value: rq.Value}
	}
	return req
}

// resolveTenants returns copies of the tenant configs with {env.*} and
// {file.*} resolved in secrets; the originals keep the placeholders, so the
// config served by the admin API never holds a secret.
func resolveTenants(in []tenant.Config, repl *caddy.Replacer) ([]tenant.Config, error) {
	out := make([]tenant.Config, len(in))
	for i, c := range in {
		c.Keys = append([]tenant.SecretConfig(nil), c.Keys...)
		for j := range c.Keys {
			s, err := resolveSecret(repl, c.Keys[j].Secret)
			if err != nil {
				return nil, fmt.Errorf("tenant %q: key #%d: %w", c.ID, j+1, err)
			}
			c.Keys[j].Secret = s
		}
		c.PublicKeys = append([]tenant.PublicKeyConfig(nil), c.PublicKeys...)
		for j := range c.PublicKeys {
			f, err := resolvePath(c.PublicKeys[j].File)
			if err != nil {
				return nil, fmt.Errorf("tenant %q: public_key #%d: %w", c.ID, j+1, err)
			}
			c.PublicKeys[j].File = f
		}
		out[i] = c
	}
	return out, nil
}

// warnCookiePrefix warns of a session cookie_name without the __Host-
// prefix: a browser then takes the cookie from any sibling subdomain
// (Domain=), which can plant its own valid session in the user's browser
// (session fixation). It loads, for deployments that need another name.
func warnCookiePrefix(logger *zap.Logger, name string) {
	if !strings.HasPrefix(name, "__Host-") {
		logger.Warn("cookie_name lacks the __Host- prefix: a sibling subdomain can then set the session cookie (session fixation); keep __Host- unless a browser or proxy needs another name",
			zap.String("cookie_name", name))
	}
}

// Validate checks the configuration without changing it.
func (h *Handler) Validate() error {
	if err := gateway.CheckPrefix(h.Prefix); err != nil {
		return err
	}
	if !validCookieName(h.CookieName) {
		return fmt.Errorf("cookie_name %q: not a valid cookie name", h.CookieName)
	}
	if h.TokenParam == "" || strings.ContainsAny(h.TokenParam, "&=?# ") {
		return fmt.Errorf("token_param %q: not a valid query parameter name", h.TokenParam)
	}
	for name, d := range map[string]caddy.Duration{"session_ttl": h.SessionTTL, "idle_timeout": h.IdleTimeout, "max_token_age": h.MaxTokenAge, "leeway": h.Leeway} {
		if d < 0 {
			return fmt.Errorf("%s: must not be negative", name)
		}
	}
	if h.SessionTTL > caddy.Duration(MaxSessionTTL) {
		return fmt.Errorf("session_ttl %s: at most %s (30 days), how long an admin revocation lasts", time.Duration(h.SessionTTL), MaxSessionTTL)
	}
	if h.Leeway > caddy.Duration(gateway.MaxLeeway) {
		return fmt.Errorf("leeway %s: at most %s; it is the clock skew allowed, and a token is good for its lifetime plus the leeway", time.Duration(h.Leeway), gateway.MaxLeeway)
	}
	// exp and iat are whole seconds: under one second, every token the
	// token API mints would have exp = iat, and every backend's be refused.
	if h.MaxTokenAge < caddy.Duration(time.Second) {
		return fmt.Errorf("max_token_age %s: at least 1s (exp and iat are whole seconds)", time.Duration(h.MaxTokenAge))
	}
	if h.MaxTokenAge > caddy.Duration(time.Hour) {
		return fmt.Errorf("max_token_age %s: one-time tokens should live minutes at most (limit 1h)", time.Duration(h.MaxTokenAge))
	}
	if err := h.checkUpstreamHeaders(); err != nil {
		return err
	}
	if err := gateway.CheckRequire(h.gatewayRequire()); err != nil {
		return err
	}
	for i, rq := range h.Require {
		if holdsFilePlaceholder(rq.Value) {
			return fmt.Errorf("require #%d: value: a {file.*} placeholder would be read on every request, unchecked; write the value itself", i+1)
		}
	}
	return h.validateAssertion()
}

// Cleanup releases the reload-surviving state.
func (h *Handler) Cleanup() error {
	untrackTenants(h)
	if h.tenants != nil {
		h.tenants.releaseJWKS()
	}
	for _, k := range h.pooled {
		_, _ = statePool.Delete(k)
	}
	return nil
}

// ServeHTTP runs the gateway in front of next.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	err := h.gw.ServeHTTP(w, r, next.ServeHTTP)
	if ref, ok := errors.AsType[*gateway.RefusalError](err); ok {
		if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			repl.Set("http.embed.reason", string(ref.Reason))
		}
		return caddyhttp.Error(ref.Status, ref)
	}
	return err
}

func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
