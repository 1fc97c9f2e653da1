package caddymodule

import (
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/embedgate/embedgate/internal/session"
)

// The functions below are what the core calls back on a request
// (gateway.Config's OnTokenInURL, Expand and OnSession): the Caddy side of
// the request flow.

// skipAccessLog keeps a request whose URL holds a token out of Caddy's
// access log; the audit log records the exchange without the token.
func skipAccessLog(r *http.Request) {
	caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
}

// expand resolves request placeholders in require values.
func expand(r *http.Request, s string) string {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return s
	}
	return repl.ReplaceAll(s, "")
}

// setPlaceholders exposes the identity to the rest of the route and to
// Caddy's access log ({http.auth.user.id}). Every name is answered on
// lookup by one provider: a Set would add an entry to the replacer's map,
// which Caddy's proxy fills past the size where a Go map must grow. So
// that the session's subject still replaces whatever an earlier handler
// put in http.auth.user.id (as caddyauth's Set does), that entry is
// deleted; a later handler's Set (the vars directive) still overrides it.
func setPlaceholders(r *http.Request, s *session.Session, claims map[string]any) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	repl.Delete(placeholderUserID)
	tenant, subject := s.Tenant, s.Subject
	repl.Map(func(key string) (any, bool) {
		if key == placeholderUserID {
			return subject, true
		}
		name, ok := strings.CutPrefix(key, "http.embed.")
		if !ok {
			return nil, false
		}
		switch name {
		case "tenant":
			return tenant, true
		case "subject":
			return subject, true
		}
		if c, ok := strings.CutPrefix(name, "claim."); ok {
			v, ok := claims[c]
			return v, ok
		}
		return nil, false
	})
}

// placeholderUserID is the user placeholder of Caddy's access log.
const placeholderUserID = "http.auth.user.id"
