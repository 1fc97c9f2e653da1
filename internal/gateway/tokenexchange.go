package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/embedgate/embedgate/internal/policy"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/token"
)

// RFC 8693 token exchange at the token API: a tenant's backend that holds
// an identity provider's access token for the user (the subject token)
// trades it for a one-time token, instead of describing the user itself.
// The request is an OAuth token request (form-encoded, the API key as
// Bearer), the answer RFC 8693 §2.2.1's, the errors RFC 6749 §5.2's.

const (
	formContentType  = "application/x-www-form-urlencoded"
	urnGrantExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	urnTypeAccess    = "urn:ietf:params:oauth:token-type:access_token"
	urnTypeJWT       = "urn:ietf:params:oauth:token-type:jwt"
)

// Error codes of a token exchange beyond answers.go's (RFC 6749 §5.2,
// RFC 8693 §2.2.2).
const (
	codeUnsupportedGrantType = "unsupported_grant_type"
	codeInvalidTarget        = "invalid_target"
)

// exchangeParams are the request parameters read; each may appear at most
// once (RFC 6749 §3.1). Others are ignored (RFC 6749 §3.2).
var exchangeParams = []string{"grant_type", "subject_token", "subject_token_type", "requested_token_type", "scope", "actor_token", "actor_token_type"}

// tokenExchangeAnswer is the 200 body, exactly RFC 8693 §2.2.1's members.
type tokenExchangeAnswer struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
}

// exchangeRefusal is a refused token exchange. The body is {error,
// error_description: why}; detail goes to the audit log only.
type exchangeRefusal struct {
	status int
	code   string
	why    reason.Reason
	detail string
}

func badExchange(code string, why reason.Reason, format string, args ...any) *exchangeRefusal {
	return &exchangeRefusal{status: http.StatusBadRequest, code: code, why: why, detail: fmt.Sprintf(format, args...)}
}

// serveTokenExchange answers a form-encoded POST {prefix}/token. Checks, in
// order: the API key (401 invalid_client); the body (at most 16 KiB, 413);
// each parameter at most once; grant_type (missing: invalid_request, other:
// unsupported_grant_type); the tenant has a subject_issuer; subject_token
// and subject_token_type; requested_token_type (invalid_target); no
// actor_token; scope; audience and resource (invalid_target); then the
// subject token itself (invalid_request with the typed reason).
func (g *Gateway) serveTokenExchange(w http.ResponseWriter, r *http.Request, rq *request) {
	t, ref := g.apiTenant(r, rq)
	if ref != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="embedgate token API"`)
		g.exchangeRefuse(w, r, rq.hostTenant, &exchangeRefusal{status: ref.status, code: ref.body.Error, why: reason.APIKeyInvalid, detail: ref.body.Detail})
		return
	}
	setFraming(w.Header(), t)
	form, bad := readExchangeForm(w, r)
	if bad == nil {
		bad = checkExchangeParams(t, form)
	}
	if bad == nil {
		bad = checkTargets(t, rq.reg, form)
	}
	var subj *token.Subject
	if bad == nil {
		var err error
		if subj, err = g.verifier.VerifySubject(r.Context(), form.Get("subject_token"), t); err != nil {
			typed := reason.Ensure(err, reason.Malformed)
			bad = badExchange(codeInvalidRequest, typed.Reason, "subject_token: %s", typed.Detail)
		}
	}
	var ans *tokenExchangeAnswer
	var jti string
	if bad == nil {
		ans, jti, bad = g.mintFromSubject(t, subj, scopeOf(form))
	}
	if bad != nil {
		g.exchangeRefuse(w, r, t, bad)
		return
	}
	g.cfg.Observer.Token(t.ID, "")
	g.record(r, Event{Kind: EventTokenIssued, Tenant: t.ID, Subject: subj.Subject, JTI: Fingerprint(jti),
		Detail: "token exchange from subject_issuer " + subj.Issuer.Issuer})
	writeJSON(w, http.StatusOK, ans)
}

// checkTargets holds audience and resource (RFC 8693 §2.1; each may
// repeat) to what the traded token is for: audience the tenant's id (its
// aud) or a URL as resource may be; resource an absolute http(s) URL, on a
// host that does not belong to another tenant (where the token would be
// refused). Any other target is one the gateway will not issue for:
// invalid_target (§2.2.2), not a token for another target than the caller
// asked. A host that belongs to no tenant is allowed: the caller may name
// the public URL while calling on an internal one.
func checkTargets(t *tenant.Tenant, reg *tenant.Registry, form url.Values) *exchangeRefusal {
	for _, a := range form["audience"] {
		if a != "" && a != t.ID && !targetURL(t, reg, a) {
			return badExchange(codeInvalidTarget, reason.BadRequest, "audience: tenant %q's id, or a URL this token is for", t.ID)
		}
	}
	for _, res := range form["resource"] {
		if res != "" && !targetURL(t, reg, res) {
			return badExchange(codeInvalidTarget, reason.BadRequest, "resource: an http(s) URL, without a fragment or user info, on no other tenant's host")
		}
	}
	return nil
}

// targetURL reports whether s is a URL a token of t can be used at.
func targetURL(t *tenant.Tenant, reg *tenant.Registry, s string) bool {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" || u.User != nil {
		return false
	}
	other, ok := reg.ByHost(tenant.HostOf(u.Host))
	return !ok || other.ID == t.ID
}

// credentialParams are the token exchange's parameters that carry a
// credential: they belong in the body, and a URL that holds one is kept
// out of the access log and refused.
var credentialParams = []string{"subject_token", "actor_token"}

// credentialInURL reports whether the raw query carries one of
// credentialParams.
func credentialInURL(raw string) bool {
	if raw == "" {
		return false
	}
	for _, name := range credentialParams {
		if policy.HasQueryParam(raw, name) {
			return true
		}
	}
	return false
}

// readExchangeForm reads the body as a form, bounded: the parameters come
// from the body only, never from the URL.
func readExchangeForm(w http.ResponseWriter, r *http.Request) (url.Values, *exchangeRefusal) {
	tooLarge := &exchangeRefusal{status: http.StatusRequestEntityTooLarge, code: codeInvalidRequest, why: reason.BadRequest,
		detail: fmt.Sprintf("the body is over %d bytes", maxTokenAPIBody)}
	if r.ContentLength > maxTokenAPIBody {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTokenAPIBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge
		}
		return nil, badExchange(codeInvalidRequest, reason.BadRequest, "unreadable body")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badExchange(codeInvalidRequest, reason.BadRequest, "the body is not a form")
	}
	for _, name := range exchangeParams {
		if len(form[name]) > 1 {
			return nil, badExchange(codeInvalidRequest, reason.BadRequest, "%s given twice", name)
		}
		if form.Get(name) == "" {
			delete(form, name) // sent without a value: omitted (RFC 6749 §3.1)
		}
	}
	return form, nil
}

// checkExchangeParams checks the parameters of a token exchange for t.
func checkExchangeParams(t *tenant.Tenant, form url.Values) *exchangeRefusal {
	switch gt := form.Get("grant_type"); {
	case gt == "":
		return badExchange(codeInvalidRequest, reason.BadRequest, "grant_type is missing")
	case gt != urnGrantExchange:
		return badExchange(codeUnsupportedGrantType, reason.BadRequest, "grant_type must be %s", urnGrantExchange)
	}
	if len(t.SubjectIssuers) == 0 {
		return badExchange(codeInvalidRequest, reason.BadRequest, "tenant %q has no subject_issuer: it takes no token exchange", t.ID)
	}
	if form.Get("subject_token") == "" {
		return badExchange(codeInvalidRequest, reason.BadRequest, "subject_token is missing")
	}
	switch st := form.Get("subject_token_type"); st {
	case urnTypeAccess, urnTypeJWT:
	case "":
		return badExchange(codeInvalidRequest, reason.BadRequest, "subject_token_type is missing")
	default:
		return badExchange(codeInvalidRequest, reason.BadRequest, "subject_token_type must be %s or %s", urnTypeAccess, urnTypeJWT)
	}
	if rt := form.Get("requested_token_type"); rt != "" && rt != urnTypeJWT {
		return badExchange(codeInvalidTarget, reason.BadRequest, "requested_token_type: only %s is issued", urnTypeJWT)
	}
	if form.Get("actor_token") != "" || form.Get("actor_token_type") != "" {
		return badExchange(codeInvalidRequest, reason.BadRequest, "actor_token: delegation is not supported")
	}
	for s := range policy.Scopes(form.Get("scope")) {
		if !policy.ScopeToken(s) {
			return badExchange(codeInvalidRequest, reason.BadRequest, "scope: a scope holds a character outside RFC 6749's scope-token")
		}
	}
	return nil
}

// scopeOf is the requested scope, normalized: single spaces, each scope
// once, in the order given.
func scopeOf(form url.Values) []string {
	var scopes []string
	for s := range policy.Scopes(form.Get("scope")) {
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	return scopes
}

// mintFromSubject signs the one-time token for a verified subject token: an
// ordinary one (single-use jti, exp - iat within max_token_age, and never
// past the subject token's exp) whose sub is the subject_claim's value and
// whose other claims are the issuer's copy_claims and the scope, nothing
// else of the subject token.
func (g *Gateway) mintFromSubject(t *tenant.Tenant, subj *token.Subject, scopes []string) (*tokenExchangeAnswer, string, *exchangeRefusal) {
	if err := token.CheckSubject(subj.Subject); err != nil {
		return nil, "", badExchange(codeInvalidRequest, reason.Malformed, "subject_token: %s (from claim %q)", reason.Ensure(err, reason.Malformed).Detail, subj.Issuer.SubjectClaim)
	}
	key, ok := t.SigningKey()
	if !ok { // tenant.New refuses api_keys without a key; defensive
		return nil, "", badExchange(codeInvalidRequest, reason.BadRequest, "this tenant has no HS256 key to sign with")
	}
	ttl, _ := g.tokenTTL(nil)
	now := g.now().Truncate(time.Second)
	// Never past the subject token's exp: one that verified within the
	// leeway after it, or that ends within the second, has nothing left to
	// trade (a floor of 1s minted a token outliving it).
	left := subj.ExpiresAt.Sub(now).Truncate(time.Second)
	if left < time.Second {
		return nil, "", badExchange(codeInvalidRequest, reason.Expired, "subject_token: expires within the second; nothing is left to trade")
	}
	ttl = min(ttl, left)
	jti := token.NewID()
	claims := map[string]any{
		"iss": t.ID, "aud": t.ID, "sub": subj.Subject,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(), "jti": jti,
	}
	for _, name := range subj.Issuer.CopyClaims {
		if v, ok := subj.Raw[name]; ok {
			claims[name] = v
		}
	}
	if len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	raw, err := token.Sign(token.Signer{Alg: tenant.HS256, KID: key.KID, Key: key.Secret}, claims)
	if err == nil {
		err = token.CheckShape(raw)
	}
	if err != nil {
		return nil, "", badExchange(codeInvalidRequest, reason.Malformed, "the copied claims make no token the exchange accepts: %s", reason.Ensure(err, reason.Malformed).Detail)
	}
	return &tokenExchangeAnswer{AccessToken: raw, IssuedTokenType: urnTypeJWT, TokenType: "N_A", ExpiresIn: int64(ttl / time.Second)}, jti, nil
}

// exchangeRefuse writes an RFC 6749 §5.2 error and audits it (never the
// key, the subject token or a claim of it).
func (g *Gateway) exchangeRefuse(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, ref *exchangeRefusal) {
	e := Event{Kind: EventReject, Reason: ref.why, Detail: "token exchange: " + ref.detail}
	if t != nil {
		e.Tenant = t.ID
	}
	g.cfg.Observer.Token(e.Tenant, e.Reason)
	g.record(r, e)
	writeJSON(w, ref.status, errorBody{Error: ref.code, Description: string(ref.why)})
}
