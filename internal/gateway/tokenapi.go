package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/embedgate/embedgate/internal/policy"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/strictjson"
	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/token"
)

// Token API limits and defaults.
const (
	// maxTokenAPIBody bounds the JSON body of POST {prefix}/token; a larger
	// body is 413.
	maxTokenAPIBody = 16 << 10
	// DefaultTokenTTL is the lifetime of an API-minted token when the request
	// has no expires_in (capped by max_token_age like any other).
	DefaultTokenTTL = 60 * time.Second
)

// EventTokenIssued is the audit kind of a token minted by the token API.
const EventTokenIssued = "token_issued"

// fieldClaims are set from a request field of their own; claims may not
// name them either. Every scope claim (policy.ScopeClaims) comes from
// scopes: a "scp" in claims would grant what scopes did not.
var fieldClaims = func() map[string]string {
	m := map[string]string{
		"email": "email", "name": "name", "groups": "groups",
		"metadata": "metadata", "allowed_origins": "allowed_origins", NonceClaim: "nonce",
	}
	for _, c := range policy.ScopeClaims() {
		m[c] = "scopes"
	}
	return m
}()

// tokenRequest is the body of POST {prefix}/token. Unknown fields are 400.
type tokenRequest struct {
	Sub            *string         `json:"sub"`
	Email          *string         `json:"email"`
	Name           *string         `json:"name"`
	Groups         []string        `json:"groups"`
	Metadata       map[string]any  `json:"metadata"`
	Scopes         []string        `json:"scopes"`
	Claims         map[string]any  `json:"claims"`
	ExpiresIn      json.RawMessage `json:"expires_in"`
	AllowedOrigins []string        `json:"allowed_origins"`
	Nonce          *string         `json:"nonce"`
}

// tokenResponse is the 201 body.
type tokenResponse struct {
	Token     string   `json:"token"`
	TokenType string   `json:"token_type"`
	ExpiresIn int64    `json:"expires_in"`
	ExpiresAt string   `json:"expires_at"`
	Tenant    string   `json:"tenant"`
	Scopes    []string `json:"scopes"`
}

// apiError is a token API refusal: error_description is the typed reason,
// field names the offending request field, detail says what is wrong. None
// of them ever holds the API key or a claim value.
type apiError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Field       string `json:"field,omitempty"`
	Detail      string `json:"detail,omitempty"`
}

// apiRefusal is an answer other than 201.
type apiRefusal struct {
	status int
	body   apiError
}

// refusalFor is the token API's answer to why, from the one table.
func refusalFor(why reason.Reason, detail string) *apiRefusal {
	a := answerFor(why, pathAPI)
	return &apiRefusal{status: a.status, body: apiError{Error: a.code, Description: string(why), Detail: detail}}
}

func badField(field, format string, args ...any) *apiRefusal {
	ref := refusalFor(reason.BadRequest, fmt.Sprintf(format, args...))
	ref.body.Field = field
	return ref
}

// serveTokenAPI is POST {prefix}/token, the server-to-server token API: a
// tenant's backend presents one of the tenant's API keys and gets a one-time
// SSO token for a user, signed with the tenant's first HS256 key, which the
// exchange then accepts like any other. The key alone picks the tenant.
//
// Checks, in order: method (405); Origin or Sec-Fetch-Site present (403, the
// API is for servers and a browser must never hold an API key); a
// form-encoded body is the RFC 8693 token exchange (serveTokenExchange);
// the Bearer API key (401); Content-Type application/json (415); body size
// (413); body fields (400, naming the field).
func (g *Gateway) serveTokenAPI(w http.ResponseWriter, r *http.Request, rq *request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	setFraming(h, rq.hostTenant)
	if r.Method != http.MethodPost {
		h.Set("Allow", "POST")
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: codeMethodNotAllowed})
		return
	}
	if r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") != "" {
		g.apiRefuse(w, r, rq.hostTenant, "", refusalFor(reason.BrowserRequest, "the token API is for servers: call it from your backend, never from a browser"))
		return
	}
	// Whatever the body's encoding: a credential in the URL is a mistake
	// to show at once (the URL is logged on the way, by proxies too).
	if credentialInURL(r.URL.RawQuery) {
		g.apiRefuse(w, r, rq.hostTenant, "", badField("", "subject_token and actor_token go in the body, never in the URL (URLs are logged)"))
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == formContentType {
		g.serveTokenExchange(w, r, rq) // RFC 8693 token exchange: tokenexchange.go
		return
	}
	t, ref := g.apiTenant(r, rq)
	if ref != nil {
		h.Set("WWW-Authenticate", `Bearer realm="embedgate token API"`)
		g.apiRefuse(w, r, rq.hostTenant, "", ref)
		return
	}
	setFraming(h, t)
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		g.apiRefuse(w, r, t, "", &apiRefusal{status: http.StatusUnsupportedMediaType, body: apiError{
			Error: codeInvalidRequest, Description: string(reason.BadRequest), Detail: "Content-Type must be application/json"}})
		return
	}
	req, ref := readTokenRequest(w, r)
	if ref != nil {
		g.apiRefuse(w, r, t, "", ref)
		return
	}
	resp, jti, ref := g.mint(t, req)
	if ref != nil {
		g.apiRefuse(w, r, t, subjectOf(req), ref)
		return
	}
	g.cfg.Observer.Token(t.ID, "")
	g.record(r, Event{Kind: EventTokenIssued, Tenant: t.ID, Subject: *req.Sub, JTI: Fingerprint(jti)})
	writeJSON(w, http.StatusCreated, resp)
}

func subjectOf(req *tokenRequest) string {
	if req.Sub == nil {
		return ""
	}
	return *req.Sub
}

// apiTenant authenticates the Bearer API key and returns its tenant.
func (g *Gateway) apiTenant(r *http.Request, rq *request) (*tenant.Tenant, *apiRefusal) {
	deny := func(detail string) *apiRefusal {
		return refusalFor(reason.APIKeyInvalid, detail)
	}
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	key = strings.TrimSpace(key)
	if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
		return nil, deny("send Authorization: Bearer <API key>")
	}
	t, ok := rq.reg.ByAPIKey(key)
	if !ok {
		return nil, deny("no tenant lists this API key")
	}
	if rq.hostTenant != nil && rq.hostTenant.ID != t.ID {
		// Hosts isolate tenants: another tenant's key is as good as none.
		return nil, deny("no tenant lists this API key")
	}
	return t, nil
}

// apiRefuse writes a refusal and audits it (never the key or the body).
func (g *Gateway) apiRefuse(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, sub string, ref *apiRefusal) {
	detail := ref.body.Detail
	if ref.body.Field != "" {
		detail = ref.body.Field + ": " + detail
	}
	e := Event{Kind: EventReject, Reason: reason.Reason(ref.body.Description), Detail: "token API: " + detail, Subject: sub}
	if t != nil {
		e.Tenant = t.ID
	}
	g.cfg.Observer.Token(e.Tenant, e.Reason)
	g.record(r, e)
	writeJSON(w, ref.status, ref.body)
}

// readTokenRequest decodes the body strictly: at most 16 KiB, one JSON
// object, no unknown fields, numbers kept exact.
func readTokenRequest(w http.ResponseWriter, r *http.Request) (*tokenRequest, *apiRefusal) {
	tooLarge := &apiRefusal{status: http.StatusRequestEntityTooLarge, body: apiError{
		Error: codeInvalidRequest, Description: string(reason.BadRequest),
		Detail: fmt.Sprintf("the body is over %d bytes", maxTokenAPIBody)}}
	if r.ContentLength > maxTokenAPIBody {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTokenAPIBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge
		}
		return nil, badField("", "unreadable body")
	}
	var req tokenRequest
	switch err := strictjson.Decode(body, &req, true); {
	case err == nil:
		return &req, nil
	case errors.Is(err, strictjson.ErrTrailingData):
		return nil, badField("", "data after the JSON object")
	default:
		if ne, ok := errors.AsType[*strictjson.NameError](err); ok {
			return nil, badField(ne.Field(), "%s", ne.Problem)
		}
		return nil, decodeRefusal(err)
	}
}

// decodeRefusal names the field an encoding/json error is about.
func decodeRefusal(err error) *apiRefusal {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		field := te.Field
		if field == "" {
			return badField("", "the body must be a JSON object")
		}
		return badField(field, "wrong type: %s given, %s expected", te.Value, jsonKind(te.Type.String()))
	}
	const unknown = `json: unknown field "`
	if msg := err.Error(); strings.HasPrefix(msg, unknown) {
		name, _ := strconv.Unquote(msg[len("json: unknown field "):])
		return badField(name, "unknown field")
	}
	if errors.Is(err, io.EOF) {
		return badField("", "empty body: send a JSON object with at least sub")
	}
	return badField("", "the body is not valid JSON")
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "array of strings"
	case strings.HasPrefix(goType, "map["):
		return "object"
	case strings.Contains(goType, "string"):
		return "string"
	}
	return goType
}

// mint validates the request against t and signs the token.
func (g *Gateway) mint(t *tenant.Tenant, req *tokenRequest) (*tokenResponse, string, *apiRefusal) {
	if ref := checkStringFields(req); ref != nil {
		return nil, "", ref
	}
	ttl, ref := g.tokenTTL(req.ExpiresIn)
	if ref != nil {
		return nil, "", ref
	}
	scopes := []string{}
	for i, s := range req.Scopes {
		if !policy.ScopeToken(s) {
			return nil, "", badField("scopes", "scope #%d is not an RFC 6749 scope-token (printable ASCII but the space, '\"' and '\\')", i+1)
		}
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	allowed, err := tenantOrigins(t).Narrow(req.AllowedOrigins)
	if err != nil {
		return nil, "", allowedOriginsRefusal(t, err)
	}
	if ref := checkExtraClaims(req); ref != nil {
		return nil, "", ref
	}
	key, ok := t.SigningKey()
	if !ok { // tenant.New refuses api_keys without a key; defensive
		return nil, "", &apiRefusal{status: http.StatusConflict, body: apiError{
			Error: codeInvalidRequest, Description: string(reason.BadRequest), Detail: "this tenant has no HS256 key to sign with"}}
	}
	jti := token.NewID()
	now := g.now().Truncate(time.Second)
	exp := now.Add(ttl)
	claims := make(map[string]any, len(req.Claims)+12)
	maps.Copy(claims, req.Claims)
	claims["iss"], claims["aud"], claims["sub"] = t.ID, t.ID, *req.Sub
	claims["iat"], claims["exp"], claims["jti"] = now.Unix(), exp.Unix(), jti
	if req.Email != nil {
		claims["email"] = *req.Email
	}
	if req.Name != nil {
		claims["name"] = *req.Name
	}
	if req.Nonce != nil {
		claims[NonceClaim] = *req.Nonce
	}
	if req.Groups != nil {
		claims["groups"] = req.Groups
	}
	if len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	if req.Metadata != nil {
		claims["metadata"] = req.Metadata
	}
	if origins := allowed.Narrowed(); origins != nil {
		claims[AllowedOriginsClaim] = origins
	}
	raw, err := token.Sign(token.Signer{Alg: tenant.HS256, KID: key.KID, Key: key.Secret}, claims)
	if err != nil {
		return nil, "", badField("", "the claims cannot be encoded as JSON")
	}
	if err := token.CheckShape(raw); err != nil {
		return nil, "", badField("", "%s", reason.Ensure(err, reason.Malformed).Detail)
	}
	return &tokenResponse{
		Token: raw, TokenType: "Bearer", ExpiresIn: int64(ttl / time.Second),
		ExpiresAt: exp.UTC().Format(time.RFC3339), Tenant: t.ID, Scopes: scopes,
	}, jti, nil
}

// checkStringFields refuses a missing or unusable sub (token.CheckSubject),
// an empty nonce, and string fields that cannot travel in a header.
func checkStringFields(req *tokenRequest) *apiRefusal {
	if req.Sub == nil || *req.Sub == "" {
		return badField("sub", "required: the user the token is for")
	}
	if err := token.CheckSubject(*req.Sub); err != nil {
		return badField("sub", "%s", reason.Ensure(err, reason.Malformed).Detail)
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"email", req.Email}, {"name", req.Name}, {"nonce", req.Nonce}} {
		if f.v == nil {
			continue
		}
		if err := checkHeaderSafe(f.name, *f.v); err != nil {
			return badField(f.name, "%s", reason.Ensure(err, reason.Malformed).Detail)
		}
	}
	if req.Nonce != nil && *req.Nonce == "" {
		return badField("nonce", "empty: send the state the gateway gave login_url, or leave nonce out")
	}
	return nil
}

// checkExtraClaims holds metadata and claims to what the gateway may sign:
// no registered claim, no claim that a field of its own sets, no dotted
// name in claims.
func checkExtraClaims(req *tokenRequest) *apiRefusal {
	for _, k := range slices.Sorted(maps.Keys(req.Metadata)) {
		if token.IsRegistered(k) {
			return badField("metadata."+k, "%s is a registered claim, set by the gateway only", k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(req.Claims)) {
		if token.IsRegistered(k) {
			return badField("claims."+k, "%s is a registered claim, set by the gateway only", k)
		}
		if f, ok := fieldClaims[k]; ok {
			return badField("claims."+k, "set %s with the %s field", k, f)
		}
		if strings.Contains(k, ".") {
			// forward_claim and require read dotted paths: a top-level
			// "metadata.plan" would stand in for the nested member.
			return badField("claims."+k, "a claim name may not contain '.': nest it as an object instead")
		}
	}
	return nil
}

// tokenTTL reads expires_in: a positive whole number of seconds, capped by
// max_token_age; absent means DefaultTokenTTL (also capped).
func (g *Gateway) tokenTTL(raw json.RawMessage) (time.Duration, *apiRefusal) {
	limit := g.cfg.MaxTokenAge
	if limit <= 0 {
		limit = token.DefaultMaxTokenAge
	}
	if len(raw) == 0 || string(raw) == "null" {
		return min(DefaultTokenTTL, limit), nil
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n <= 0 {
		return 0, badField("expires_in", "must be a positive whole number of seconds (at most %d)", int64(limit/time.Second))
	}
	if n > int64(limit/time.Second) {
		return limit, nil
	}
	return time.Duration(n) * time.Second, nil
}

// allowedOriginsRefusal words Narrow's refusal of allowed_origins: nil means
// the tenant's frame_ancestors, so an empty list is a mistake, and the list
// narrows them, never widens.
func allowedOriginsRefusal(t *tenant.Tenant, err error) *apiRefusal {
	ne, _ := errors.AsType[*narrowError](err)
	switch {
	case ne == nil || ne.err != nil: // an entry is not an origin: ParseOrigin says why
		return badField("allowed_origins", "%v", err)
	case ne.outside != "":
		return badField("allowed_origins", "origin %q is not in frame_ancestors of tenant %q: allowed_origins can only narrow it", ne.outside, t.ID)
	}
	return badField("allowed_origins", "empty: omit it to allow the tenant's frame_ancestors")
}
