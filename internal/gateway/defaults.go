package gateway

import (
	"fmt"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/embedgate/embedgate/internal/policy"
	"github.com/embedgate/embedgate/internal/token"
)

// Defaults of Config, applied by the adapter from here; documented on its
// JSON fields.
const (
	DefaultSessionTTL  = 8 * time.Hour
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxTokenAge = token.DefaultMaxTokenAge
	DefaultLeeway      = 30 * time.Second
	DefaultCookieName  = "__Host-embed_session"
	DefaultPrefix      = "/.embed"
	DefaultTokenParam  = "embed_token"
)

// MaxSessionTTL is the longest session lifetime, and how long an admin
// revocation lasts: fixed, so that a cutoff stored by one instance outlives
// the sessions of every instance sharing the store.
const MaxSessionTTL = 30 * 24 * time.Hour

// MaxLeeway is token.MaxLeeway, the largest leeway a handler may set.
const MaxLeeway = token.MaxLeeway

// reservedForwardHeaders are headers a forward_claim may not set: the
// session travels in Cookie; Host and Authorization mean something to every
// server; the hop-by-hop ones would be dropped by the proxy (or change how
// the request is framed); the method overrides never reach the app.
var reservedForwardHeaders = []string{
	"Cookie", "Host", "Authorization", "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Content-Length", "Expect", "Proxy-Authorization",
}

// CheckForwardHeader refuses a forward_claim header the gateway or HTTP
// itself owns. Names compare as an app reads them (policy.SameHeaderName):
// X_Embed_Tenant is X-Embed-Tenant to a PHP app, beside the gateway's.
func CheckForwardHeader(name string) error {
	if policy.SameHeaderName(name, HeaderTenant) || policy.SameHeaderName(name, HeaderSubject) || policy.IsAlwaysRemoved(name) {
		return fmt.Errorf("header %s is reserved", name)
	}
	for _, r := range reservedForwardHeaders {
		if policy.SameHeaderName(name, r) {
			return fmt.Errorf("header %s is reserved", name)
		}
	}
	return nil
}

// CheckRequire checks require rules as written: each is a scope alone, or a
// claim path with the value it must hold. A value beside a scope is refused
// rather than ignored: the operator meant it to restrict something. The
// error names the rule by its number.
func CheckRequire(req []Requirement) error {
	for i, rq := range req {
		switch {
		case (rq.Scope == "") == (rq.Claim == ""):
			return fmt.Errorf("require #%d: set either scope or claim", i+1)
		case rq.Claim != "" && rq.Value == "":
			return fmt.Errorf("require #%d: claim %q needs a value", i+1, rq.Claim)
		case rq.Scope != "" && rq.Value != "":
			return fmt.Errorf("require #%d: scope %q takes no value; a value goes with a claim", i+1, rq.Scope)
		case rq.Scope != "" && !policy.ScopeToken(rq.Scope):
			return fmt.Errorf("require #%d: scope %q is not an RFC 6749 scope-token (printable ASCII but the space, '\"' and '\\'), so no scope could match it", i+1, rq.Scope)
		}
	}
	return nil
}

// CheckUpstreamHeaders checks the headers the gateway sets on requests to
// the app besides its own: each forward claim's (in order) and the
// assertion's ("" for none). Each forward claim needs a claim path; each
// name must be one HTTP can send (else the proxy fails every request), not
// one CheckForwardHeader refuses, and no two may be one header to the app.
// The error names the forward_claim by its number, or the assertion.
func CheckUpstreamHeaders(forward []ForwardClaim, assertion string) error {
	names := make([]string, len(forward), len(forward)+1)
	for i, fc := range forward {
		if fc.Claim == "" {
			return fmt.Errorf("forward_claim #%d: needs a claim path", i+1)
		}
		if !httpguts.ValidHeaderFieldName(fc.Header) {
			return fmt.Errorf("forward_claim #%d: header %q is not a valid header name", i+1, fc.Header)
		}
		names[i] = fc.Header
	}
	if assertion != "" {
		if !httpguts.ValidHeaderFieldName(assertion) {
			return fmt.Errorf("assertion: header %q is not a valid header name", assertion)
		}
		names = append(names, assertion)
	}
	for i, name := range names {
		what := fmt.Sprintf("forward_claim #%d", i+1)
		if i == len(forward) {
			what = "assertion"
		}
		if err := CheckForwardHeader(name); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		for j, prev := range names[:i] {
			if policy.SameHeaderName(name, prev) {
				return fmt.Errorf("%s: header %s is forward_claim #%d's header %s to the app", what, name, j+1, prev)
			}
		}
	}
	return nil
}
