package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/strictjson"
	"github.com/embedgate/embedgate/internal/token"
)

func init() {
	caddy.RegisterModule(AdminRevoke{})
}

// AdminRevoke adds an incident-response route to Caddy's admin API, which
// is only reachable where the admin endpoint listens (loopback by default):
//
//	POST /embed_session/revoke
//	{"tenant": "acme"}                          every session of the tenant
//	{"tenant": "acme", "subject": "jane@acme"}  every session of one user
//
// An unknown tenant is 404 {"error":"unknown_tenant"}. Sessions issued up to
// now are refused from then on; the cutoff is stored for MaxSessionTTL (30
// days): no instance may have a longer session_ttl, so it outlives every
// session it covers on every instance sharing the store, not just this
// process's. revoked_until is when the last session it covers here ends. The revocation goes to every store this process
// runs: with store redis, that is every instance sharing the Redis and key
// prefix (each refuses the sessions within about a second); with store
// memory, this process only.
type AdminRevoke struct{}

// CaddyModule returns the Caddy module information.
func (AdminRevoke) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.embed_session",
		New: func() caddy.Module { return new(AdminRevoke) },
	}
}

// Routes implements caddy.AdminRouter.
func (a *AdminRevoke) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/embed_session/revoke", Handler: caddy.AdminHandlerFunc(a.handleRevoke)}}
}

// revokeRequest is the body of POST /embed_session/revoke.
type revokeRequest struct {
	Tenant  string `json:"tenant"`
	Subject string `json:"subject,omitempty"`
}

// MaxSessionTTL is the longest session_ttl Validate accepts, and how long
// an admin revocation lasts (the core's rule). It is fixed rather than
// taken from this process's handlers: an instance sharing the Redis store
// may run a longer session_ttl, and a cutoff that expired before its
// sessions did would bring revoked sessions back there.
const MaxSessionTTL = gateway.MaxSessionTTL

// revokeResponse is the 200 answer.
type revokeResponse struct {
	Tenant  string      `json:"tenant"`
	Subject string      `json:"subject,omitempty"`
	Until   string      `json:"revoked_until"` // now + the longest session_ttl serving the tenant
	Stores  []storeInfo `json:"stores"`
}

// Bounds on the request; tenant ids and subjects are short in practice.
const (
	maxRevokeBody = 4 << 10
	maxIDLength   = 1024
)

func (a *AdminRevoke) handleRevoke(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed: use POST")}
	}
	req, err := readRevokeRequest(r)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	stores := activeStores()
	if len(stores) == 0 {
		return caddy.APIError{HTTPStatus: http.StatusConflict, Err: errors.New("no embed_session handler is running in this process")}
	}
	span, known := revocationSpan(req.Tenant)
	if !known {
		// A mistyped tenant during an incident must not look like success.
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Message: "unknown_tenant",
			Err: fmt.Errorf("tenant %q is not configured in any running embed_session handler", req.Tenant)}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	resp := revokeResponse{Tenant: req.Tenant, Subject: req.Subject}
	now := time.Now()
	// The cutoff is stored for MaxSessionTTL, so that it outlives the
	// sessions of any instance sharing the store, plus twice the largest
	// leeway, for instances whose clocks run behind. revoked_until reports
	// the real end of what it covers here: the longest session_ttl serving
	// the tenant, after which every session it revoked would have ended
	// anyway.
	until := now.Add(MaxSessionTTL + 2*gateway.MaxLeeway)
	// Every store is tried, whatever fails: one Redis down during an
	// incident must not keep the revocation from the stores that are up.
	var failed []string
	for _, st := range stores {
		_, rv := st.parts()
		if err := rv.RevokeAll(ctx, req.Tenant, req.Subject, until); err != nil {
			failed = append(failed, fmt.Sprintf("%s (%v)", describeStore(st.info()), err))
			continue
		}
		resp.Stores = append(resp.Stores, st.info())
	}
	resp.Until = now.Add(span).UTC().Format(time.RFC3339)
	logRevoke(req, resp, len(failed))
	if len(failed) > 0 {
		applied := make([]string, len(resp.Stores))
		for i, s := range resp.Stores {
			applied[i] = describeStore(s)
		}
		// Retrying is safe: a later RevokeAll covers an earlier one.
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable,
			Err: fmt.Errorf("revocation not stored in %d of %d stores (store_unavailable), retry: failed: %s; stored: [%s]",
				len(failed), len(stores), strings.Join(failed, ", "), strings.Join(applied, ", "))}
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(resp)
}

// describeStore names a store in an error, without secrets (info holds
// the Redis URL with its password masked).
func describeStore(s storeInfo) string {
	if s.Redis == "" {
		return s.Type
	}
	return s.Type + " " + s.Redis + " prefix " + strconv.Quote(s.KeyPrefix)
}

// logRevoke records an admin revocation, also one only partly stored: the
// stores named in resp hold it.
func logRevoke(req revokeRequest, resp revokeResponse, failed int) {
	fields := []zap.Field{zap.String("tenant", req.Tenant)}
	if req.Subject != "" {
		fields = append(fields, zap.String("sub", req.Subject))
	}
	fields = append(fields, zap.String("until", resp.Until), zap.Int("stores", len(resp.Stores)))
	msg := "sessions revoked by an admin"
	if failed > 0 {
		fields = append(fields, zap.Int("stores_failed", failed))
		msg = "an admin revocation was not stored in every store"
	}
	caddy.Log().Named("embed_session.admin").Warn(msg, fields...)
}

// readRevokeRequest decodes and checks the body: exactly one JSON object,
// with a tenant, its member names exact and each at most once (a misspelt
// "sub", or a "Subject": "" after the real one, must not widen the
// revocation to the whole tenant: strictjson), a subject that is a usable
// one when given (null from an unset variable, or "", is not "every user":
// leave it out for that), no control characters.
func readRevokeRequest(r *http.Request) (revokeRequest, error) {
	var req revokeRequest
	const want = `body: want {"tenant": "...", "subject": "..."} (subject optional)`
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRevokeBody+1))
	if err != nil {
		return req, fmt.Errorf("%s: %w", want, err)
	}
	if len(body) > maxRevokeBody {
		return req, fmt.Errorf("body: over %d bytes", maxRevokeBody)
	}
	var given struct {
		Tenant  string          `json:"tenant"`
		Subject json.RawMessage `json:"subject"` // "null" when null, nil when absent
	}
	switch err := strictjson.Decode(body, &given, false); {
	case errors.Is(err, strictjson.ErrTrailingData):
		return req, errors.New("body: one JSON object expected, and nothing after it")
	case err != nil:
		return req, fmt.Errorf("%s: %w", want, err)
	}
	req.Tenant = given.Tenant
	if given.Subject != nil {
		if err := json.Unmarshal(given.Subject, &req.Subject); err != nil || string(given.Subject) == "null" || req.Subject == "" {
			return req, errors.New(`subject: a non-empty string; leave "subject" out to revoke every session of the tenant`)
		}
		if err := token.CheckSubject(req.Subject); err != nil {
			return req, fmt.Errorf("subject: %s: no session can have it", reason.Ensure(err, reason.Malformed).Detail)
		}
	}
	if req.Tenant == "" {
		return req, errors.New("tenant is required")
	}
	for name, v := range map[string]string{"tenant": req.Tenant, "subject": req.Subject} {
		if len(v) > maxIDLength {
			return req, fmt.Errorf("%s: longer than %d bytes", name, maxIDLength)
		}
	}
	// The subject's characters were checked by token.CheckSubject above.
	for i := 0; i < len(req.Tenant); i++ {
		if c := req.Tenant[i]; c < 0x20 || c == 0x7f {
			return req, errors.New("tenant: control characters are not allowed")
		}
	}
	return req, nil
}

// revocationSpan is how long the tenant's sessions in this process can still
// live: the longest session_ttl among the running handlers that serve it
// (inline or from a tenants file). known is false when none does.
func revocationSpan(tenantID string) (span time.Duration, known bool) {
	for _, h := range liveHandlers() {
		if h.tenants == nil {
			continue
		}
		if _, ok := h.tenants.load().ByID(tenantID); ok {
			known = true
			span = max(span, time.Duration(h.SessionTTL))
		}
	}
	return span, known
}

// Interface guards
var _ caddy.AdminRouter = (*AdminRevoke)(nil)
