package gateway

import (
	"net/http"
	"slices"

	"github.com/embedgate/embedgate/internal/policy"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/token"
)

// AllowedOriginsClaim is the token claim that narrows a session's framing
// allowlist: an array of origins, intersected with the tenant's
// frame_ancestors. The token API sets it from allowed_origins; a token a
// customer signs may carry it too.
const AllowedOriginsClaim = "allowed_origins"

// narrowedByToken returns the session's allowlist: nil when the token has no
// allowed_origins (the tenant's own list applies), else the origins of the
// claim that are also in frame_ancestors, in the claim's order. The claim can
// only narrow: an origin outside frame_ancestors is dropped, and a claim that
// leaves nothing refuses the exchange (such a session could be framed
// nowhere).
func narrowedByToken(t *tenant.Tenant, c token.Claims) ([]string, error) {
	v, ok := c.Raw[AllowedOriginsClaim]
	if !ok {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, reason.Errorf(reason.Malformed, "%s is not an array of origins", AllowedOriginsClaim)
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, reason.Errorf(reason.Malformed, "%s is not an array of origins", AllowedOriginsClaim)
		}
		o, err := policy.ParseOrigin(s)
		if err != nil {
			return nil, reason.Errorf(reason.Malformed, "%s holds an entry that is not an origin", AllowedOriginsClaim)
		}
		if t.AllowsOrigin(o) && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	if len(out) == 0 {
		return nil, reason.Errorf(reason.ForbiddenOrigin, "%s shares no origin with frame_ancestors of tenant %q", AllowedOriginsClaim, t.ID)
	}
	return out, nil
}

// originsAllow is the allowlist check for a narrowed list (nil: the tenant's).
func originsAllow(t *tenant.Tenant, origins []string) func(string) bool {
	if origins == nil {
		return t.AllowsOrigin
	}
	return func(o string) bool { return o != "" && slices.Contains(origins, o) && t.AllowsOrigin(o) }
}

// framingCSP is the frame-ancestors directive for responses of session s of
// tenant t: the tenant's own, or, for a session narrowed by allowed_origins,
// the intersection of its list with the tenant's current frame_ancestors (a
// config change that drops an origin applies at once).
func framingCSP(t *tenant.Tenant, s *session.Session) string {
	if t == nil {
		return policy.FrameAncestors(nil)
	}
	if s == nil || s.Origins == nil {
		return t.FrameAncestorsCSP()
	}
	kept := make([]string, 0, len(s.Origins))
	for _, o := range s.Origins {
		if t.AllowsOrigin(o) {
			kept = append(kept, o)
		}
	}
	return policy.FrameAncestors(kept)
}

// setSessionFraming is setFraming for a response that belongs to session s.
func setSessionFraming(h http.Header, t *tenant.Tenant, s *session.Session) {
	h.Del("X-Frame-Options")
	h.Set("Content-Security-Policy", framingCSP(t, s))
}
