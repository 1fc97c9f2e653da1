package gateway

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/tenant"
)

// Assertions signs the identity of a request with a live session for the
// app (internal/assertion.Issuer), and publishes the keys that verify it.
type Assertions interface {
	// Header is the canonical request header the assertion travels in.
	Header() string
	// For returns the assertion for r with the live session s, whose kept
	// claims are claims. It must be cheap: it runs on every such request.
	For(r *http.Request, s *session.Session, claims map[string]any) (string, error)
	// JWKS is the key set ({"keys": [...]}) of every public key.
	JWKS() ([]byte, error)
}

// jwksMaxAge is how long a verifier may cache the key set: a rotation
// keeps the old key published at least this long (see the README).
const jwksMaxAge = "public, max-age=300"

// checkUpstreamHeaders applies CheckUpstreamHeaders to cfg.
func checkUpstreamHeaders(cfg Config) error {
	assertion := ""
	if cfg.Assertions != nil {
		assertion = cfg.Assertions.Header()
	}
	if err := CheckUpstreamHeaders(cfg.ForwardClaims, assertion); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	return nil
}

// setAssertion puts the session's assertion on r for the app. When none can
// be had (a generated key that storage cannot give), the request is refused
// with 503 store_unavailable rather than sent without it: an app that
// checks assertions would refuse it anyway, and one that does not must not
// learn to live without them. It reports whether r may go on.
func (g *Gateway) setAssertion(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, s *session.Session, claims map[string]any, allowed Origins) bool {
	tok, err := g.cfg.Assertions.For(r, s, claims)
	if err == nil {
		r.Header.Set(g.cfg.Assertions.Header(), tok)
		return true
	}
	typed := reason.Ensure(err, reason.StoreUnavailable)
	setSessionFraming(w.Header(), allowed)
	g.cfg.Observer.Request(t.ID, RequestRefused)
	g.audit(r, t, s, typed, false)
	writeRefusal(w, typed.Reason, pathSession)
	return false
}

// serveJWKS is GET {prefix}/jwks.json: the assertion keys, public, served
// without a session to anyone (an app on another origin may fetch it), and
// never framed. Without assertions configured there is no such endpoint.
func (g *Gateway) serveJWKS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	setFraming(h, nil)
	if g.cfg.Assertions == nil {
		writeJSON(w, http.StatusNotFound, errorBody{Error: codeNotFound})
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: codeMethodNotAllowed})
		return
	}
	body, err := g.cfg.Assertions.JWKS()
	if err != nil {
		h.Set("Cache-Control", "no-store")
		typed := reason.Ensure(err, reason.StoreUnavailable)
		g.record(r, Event{Kind: EventReject, Reason: typed.Reason, Detail: "jwks: " + typed.Detail})
		writeRefusal(w, typed.Reason, pathSession)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", jwksMaxAge)
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}
