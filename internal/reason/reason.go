// Package reason holds the typed reasons for which embedgate refuses a token,
// a session or a request. One value travels unchanged to the client's
// error_description, the audit log and the metric label, so the set is closed
// and every value is a stable, documented string.
package reason

import (
	"errors"
	"fmt"
)

// Reason is a stable, machine-readable rejection reason.
type Reason string

// Token rejections (the exchange). The set is pinned: clients match on it.
const (
	Malformed        Reason = "malformed"
	BadAlgorithm     Reason = "bad_algorithm"
	BadSignature     Reason = "bad_signature"
	UnknownTenant    Reason = "unknown_tenant"
	UnknownKey       Reason = "unknown_key"
	ForbiddenHeader  Reason = "forbidden_header"
	Expired          Reason = "expired"
	NotYetValid      Reason = "not_yet_valid"
	IssuedInFuture   Reason = "issued_in_future"
	LifetimeTooLong  Reason = "lifetime_too_long"
	WrongIssuer      Reason = "wrong_issuer"
	WrongAudience    Reason = "wrong_audience"
	MissingClaim     Reason = "missing_claim"
	Replayed         Reason = "replayed"
	StoreUnavailable Reason = "store_unavailable"
	// StateMismatch refuses a token link (?embed_token=) whose nonce claim
	// is not this browser's login-state cookie (login_state).
	StateMismatch Reason = "state_mismatch"
)

// Session rejections (every request after the exchange).
const (
	SessionMissing Reason = "session_missing"
	SessionInvalid Reason = "session_invalid" // tampered, foreign key, undecodable
	SessionExpired Reason = "session_expired" // past the absolute lifetime
	SessionIdle    Reason = "session_idle"    // past the idle timeout
	SessionRevoked Reason = "session_revoked" // signed out or revoked by an admin
	WrongTenant    Reason = "wrong_tenant"    // session of another tenant on this host
)

// Request rejections (policy).
const (
	CrossOrigin       Reason = "cross_origin"       // unsafe method from an origin outside the allowlist
	ForbiddenOrigin   Reason = "forbidden_origin"   // exchange or parent origin outside frame_ancestors
	RequirementFailed Reason = "requirement_failed" // a require rule did not hold
	BadRequest        Reason = "bad_request"        // malformed request around the token (return_to, body)
	SessionTooLarge   Reason = "session_too_large"  // forwarded claims do not fit in a cookie
)

// Token API rejections (POST {prefix}/token, server to server).
const (
	APIKeyInvalid  Reason = "api_key_invalid" // no Bearer API key, or one no tenant lists
	BrowserRequest Reason = "browser_request" // Origin or Sec-Fetch-Site: the API is for servers
)

// All lists every reason, in the order above: the closed set clients match
// on, for the tables that must cover each one (responses, docs).
func All() []Reason {
	return []Reason{
		Malformed, BadAlgorithm, BadSignature, UnknownTenant, UnknownKey, ForbiddenHeader, Expired,
		NotYetValid, IssuedInFuture, LifetimeTooLong, WrongIssuer, WrongAudience, MissingClaim, Replayed, StoreUnavailable, StateMismatch,
		SessionMissing, SessionInvalid, SessionExpired, SessionIdle, SessionRevoked, WrongTenant,
		CrossOrigin, ForbiddenOrigin, RequirementFailed, BadRequest, SessionTooLarge,
		APIKeyInvalid, BrowserRequest,
	}
}

// Error is a rejection with its reason and a detail for operators. The detail
// must never hold a token, secret or cookie value: it is logged and, for
// config-time tools, printed.
type Error struct {
	Reason Reason
	Detail string
	// Cause, when set, is a typed error saying more precisely what was
	// refused (e.g. *token.ClaimError), for tools that explain a refusal
	// without reading Detail's text. It is not part of Error()'s text and,
	// like Detail, never holds a token, secret or cookie value. Default:
	// none.
	Cause error
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return string(e.Reason)
	}
	return string(e.Reason) + ": " + e.Detail
}

// Unwrap returns Cause, so errors.As reaches it.
func (e *Error) Unwrap() error { return e.Cause }

// Is lets errors.Is match on the reason: errors.Is(err, reason.Expired.Err()).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason && t.Detail == ""
}

// Err returns a detail-less error for r, usable as an errors.Is target.
func (r Reason) Err() error { return &Error{Reason: r} }

// Errorf returns an *Error with reason r and a formatted detail.
func Errorf(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Of returns the reason carried by err, or "" when err carries none.
func Of(err error) Reason {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Reason
	}
	return ""
}

// Ensure returns err as an *Error. An error that carries no reason gets
// fallback, with its text as the detail (such errors come from embedgate's
// own code, never from a store or a client, so the text holds no secret):
// a refusal is always counted, logged and answered with a typed reason, and
// is never mistaken for a success. Ensure(nil, …) is nil.
func Ensure(err error, fallback Reason) *Error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	return &Error{Reason: fallback, Detail: err.Error()}
}
