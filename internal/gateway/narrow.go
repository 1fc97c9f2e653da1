package gateway

import (
	"fmt"
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

// Origins is the allowlist of a session: the origins that may frame it and
// send it unsafe requests. It is the tenant's frame_ancestors, or a subset a
// token's allowed_origins narrowed it to. A narrowed list is still checked
// against the tenant's current frame_ancestors on every use, so a config
// reload that drops an origin applies at once. The zero value allows nothing.
type Origins struct {
	t    *tenant.Tenant
	list []string // nil: not narrowed, all of t's frame_ancestors
}

// tenantOrigins is the allowlist of tenant t (nil: nothing).
func tenantOrigins(t *tenant.Tenant) Origins { return Origins{t: t} }

// sessionOrigins is the allowlist of session s of tenant t: its narrowed
// list when it has one (Session.Origins nil means the tenant's own).
func sessionOrigins(t *tenant.Tenant, s *session.Session) Origins {
	if s == nil {
		return Origins{t: t}
	}
	return Origins{t: t, list: s.Origins}
}

// Allows reports whether origin (normalized with policy.NormalizeOrigin) is
// in the allowlist.
func (o Origins) Allows(origin string) bool {
	if o.t == nil {
		return false
	}
	if o.list != nil && !slices.Contains(o.list, origin) {
		return false
	}
	return o.t.AllowsOrigin(origin)
}

// CSP is the frame-ancestors directive for the allowlist. Only a narrowed
// list costs anything: the tenant's own directive is precomputed.
func (o Origins) CSP() string {
	if o.t == nil {
		return policy.FrameAncestors(nil)
	}
	if o.list == nil {
		return o.t.FrameAncestorsCSP()
	}
	kept := make([]string, 0, len(o.list))
	for _, a := range o.list {
		if o.t.AllowsOrigin(a) {
			kept = append(kept, a)
		}
	}
	return policy.FrameAncestors(kept)
}

// Narrowed is the list to store in the session: nil when not narrowed.
func (o Origins) Narrowed() []string { return o.list }

// Narrow returns the allowlist narrowed to list: its entries as
// policy.ParseOrigin serializes them, in list's order, without repeats. It
// never widens: an entry that is not an origin or is not allowed already
// refuses the whole list, as does an empty one (it would allow nothing). A
// nil list leaves the allowlist as it is. Errors are *narrowError, for each
// caller to word for its own audience.
func (o Origins) Narrow(list []string) (Origins, error) {
	if list == nil {
		return o, nil
	}
	if len(list) == 0 {
		return Origins{}, &narrowError{}
	}
	out := make([]string, 0, len(list))
	for _, s := range list {
		origin, err := policy.ParseOrigin(s)
		if err != nil {
			return Origins{}, &narrowError{err: err}
		}
		if !o.Allows(origin) {
			return Origins{}, &narrowError{outside: origin}
		}
		if !slices.Contains(out, origin) {
			out = append(out, origin)
		}
	}
	return Origins{t: o.t, list: out}, nil
}

// narrowError is why Narrow refused a list: it was empty (neither field
// set), an entry is not an origin (err), or an origin is not allowed
// (outside).
type narrowError struct {
	err     error
	outside string
}

func (e *narrowError) Error() string {
	switch {
	case e.err != nil:
		return e.err.Error()
	case e.outside != "":
		return fmt.Sprintf("origin %q is not in the allowlist", e.outside)
	}
	return "empty list of origins"
}

// narrowedByToken narrows allowed (a tenant's) by the token's allowed_origins
// claim; without one it is returned as is. Unlike the token API, an origin
// outside the allowlist is dropped, not refused: frame_ancestors may have
// lost it since the token was minted. A claim that leaves nothing refuses
// the exchange (such a session could be framed nowhere).
func narrowedByToken(allowed Origins, c token.Claims) (Origins, error) {
	v, ok := c.Raw[AllowedOriginsClaim]
	if !ok {
		return allowed, nil
	}
	list, ok := v.([]any)
	if !ok {
		return Origins{}, reason.Errorf(reason.Malformed, "%s is not an array of origins", AllowedOriginsClaim)
	}
	kept := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return Origins{}, reason.Errorf(reason.Malformed, "%s is not an array of origins", AllowedOriginsClaim)
		}
		o, err := policy.ParseOrigin(s)
		if err != nil {
			return Origins{}, reason.Errorf(reason.Malformed, "%s holds an entry that is not an origin", AllowedOriginsClaim)
		}
		// The entry as given, not o: Narrow parses it again, and
		// ParseOrigin's output does not always parse (a "%25" in a host).
		if allowed.Allows(o) {
			kept = append(kept, s)
		}
	}
	if len(kept) == 0 {
		return Origins{}, reason.Errorf(reason.ForbiddenOrigin, "%s shares no origin with frame_ancestors of tenant %q", AllowedOriginsClaim, allowed.t.ID)
	}
	// Every kept entry parses and is allowed, so this cannot refuse.
	return allowed.Narrow(kept)
}

// setSessionFraming is setFraming for a response governed by allowed.
func setSessionFraming(h http.Header, allowed Origins) {
	setFramingCSP(h, []string{allowed.CSP()})
}

// setFramingCSP writes a frame-ancestors directive already computed, as
// the header's one value (csp has one element; the caller owns it).
func setFramingCSP(h http.Header, csp []string) {
	delete(h, "X-Frame-Options") // h.Del without canonicalising the name again
	h["Content-Security-Policy"] = csp
}
