package bridge

import "github.com/embedgate/embedgate/internal/reason"

// why is what the gate page says about its reason: a group (the gate
// element's data-why attribute, for host CSS and tests) and one sentence.
type why struct{ group, sentence string }

// The gate page's groups, one sentence each.
var (
	whyNotSignedIn = why{"not_signed_in", "You are not signed in yet. Sign in from the page that shows this app."}
	whySignedOut   = why{"signed_out", "You are signed out. Sign in again from the page that shows this app."}
	whyExpired     = why{"session_expired", "Your session has expired. Sign in again from the page that shows this app."}
	whyLinkUsed    = why{"link_used", "This sign-in link was already used: each link works once. Open the app again from the page that shows it."}
	whyNotVerified = why{"not_verified", "Your sign-in could not be verified. Sign in again from the page that shows this app."}
)

// gateWhy groups a gate page's reason; a reason it does not name (a bad
// token, a tampered cookie, a wrong tenant, ...) could not be verified.
func gateWhy(r string) why {
	switch reason.Reason(r) {
	case "", reason.SessionMissing:
		return whyNotSignedIn
	case ReasonSignedOut, reason.SessionRevoked:
		return whySignedOut
	case reason.SessionExpired, reason.SessionIdle:
		return whyExpired
	case reason.Replayed:
		return whyLinkUsed
	default:
		return whyNotVerified
	}
}
