package gateway

import (
	"net/http"

	"github.com/embedgate/embedgate/internal/reason"
)

// answer is how a refusal is answered: the HTTP status, the error code
// (OAuth's, RFC 6749 §5.2 and RFC 6750 §3.1) and whether the client may
// retry the same request shortly (Retry-After).
type answer struct {
	status int
	code   string
	retry  bool
}

// path is where a refusal happens; it decides what a 401 is called.
type path int

const (
	pathSession  path = iota // a request into the app, the session endpoints
	pathToken                // a GET with ?embed_token=
	pathExchange             // POST {prefix}/exchange
	pathAPI                  // the token API, server to server
)

// OAuth-style error codes, as clients match on them.
const (
	codeInvalidRequest = "invalid_request"
	codeInvalidToken   = "invalid_token"
	codeInvalidSession = "invalid_session"
	codeInvalidClient  = "invalid_client"
	codeForbidden      = "forbidden"
	codeUnavailable    = "temporarily_unavailable"
	// Not refusals of a reason: no such endpoint, or the wrong method.
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
)

// retryAfter is sent with 503 store_unavailable.
const retryAfter = "1"

// statuses is the one table from reason to HTTP status, used by every
// refusal path; answerFor derives the code. A test fails when a reason has
// no row.
var statuses = map[reason.Reason]int{
	// The token is what is wrong.
	reason.Malformed: 401, reason.BadAlgorithm: 401, reason.BadSignature: 401, reason.UnknownTenant: 401,
	reason.UnknownKey: 401, reason.ForbiddenHeader: 401, reason.Expired: 401, reason.NotYetValid: 401,
	reason.IssuedInFuture: 401, reason.LifetimeTooLong: 401, reason.WrongIssuer: 401, reason.WrongAudience: 401,
	reason.MissingClaim: 401, reason.Replayed: 401, reason.SessionTooLarge: 401, reason.StateMismatch: 401,
	// The store: fail closed, retry shortly.
	reason.StoreUnavailable: 503,
	// The session.
	reason.SessionMissing: 401, reason.SessionInvalid: 401, reason.SessionExpired: 401, reason.SessionIdle: 401,
	reason.SessionRevoked: 401, reason.WrongTenant: 401,
	// The request.
	reason.CrossOrigin: 403, reason.ForbiddenOrigin: 403, reason.RequirementFailed: 403, reason.BadRequest: 400,
	// The token API.
	reason.APIKeyInvalid: 401, reason.BrowserRequest: 403,
}

// answerFor is the answer to why on path p. A 401 is invalid_session on the
// session path, invalid_client at the token API, invalid_token where a token
// failed. At the exchange, wrong_tenant (a tenant parameter naming another
// tenant than the host's) is the request's fault: 400. A reason without a
// row (none, by the test) is answered as malformed.
func answerFor(why reason.Reason, p path) answer {
	status, ok := statuses[why]
	if !ok {
		status = statuses[reason.Malformed]
	}
	if p == pathExchange && why == reason.WrongTenant {
		status = http.StatusBadRequest
	}
	a := answer{status: status}
	switch status {
	case http.StatusBadRequest:
		a.code = codeInvalidRequest
	case http.StatusForbidden:
		a.code = codeForbidden
	case http.StatusServiceUnavailable:
		a.code, a.retry = codeUnavailable, true
	default:
		a.code = map[path]string{pathSession: codeInvalidSession, pathToken: codeInvalidToken, pathExchange: codeInvalidToken, pathAPI: codeInvalidClient}[p]
	}
	return a
}

// writeAnswer writes a's JSON refusal for why.
func writeAnswer(w http.ResponseWriter, a answer, why reason.Reason) {
	if a.retry {
		w.Header().Set("Retry-After", retryAfter)
	}
	writeJSON(w, a.status, errorBody{Error: a.code, Description: string(why)})
}

// writeRefusal writes the answer to why on path p.
func writeRefusal(w http.ResponseWriter, why reason.Reason, p path) {
	writeAnswer(w, answerFor(why, p), why)
}
