package token

import "github.com/embedgate/embedgate/internal/reason"

// ClaimRule is the rule a claim broke, finer than the refusal's reason: a
// tool that explains a refusal switches on it instead of reading the
// detail's text.
type ClaimRule string

// The claim rules, each with the reason a token breaking it is refused
// with.
const (
	ClaimAbsent         ClaimRule = "absent"        // missing_claim
	ClaimEmpty          ClaimRule = "empty"         // missing_claim: ""
	ClaimNotString      ClaimRule = "not_string"    // malformed
	ClaimNotNumber      ClaimRule = "not_number"    // malformed
	ClaimOutOfRange     ClaimRule = "out_of_range"  // malformed: a date outside [0, 9999-12-31]
	ClaimNotAfterIssued ClaimRule = "not_after_iat" // malformed: exp <= iat (Claim is "exp")
)

// ClaimError is the Cause of a refusal about one claim's presence, type or
// range (reason.Error.Cause; reach it with errors.As). It names the claim,
// never its value.
type ClaimError struct {
	Claim string // "iss", "aud", "sub", "jti", "iat", "exp", "nbf", or a subject_claim
	Rule  ClaimRule
}

func (e *ClaimError) Error() string { return e.Claim + ": " + string(e.Rule) }

// reason is the reason a refusal under rule carries: an absent or empty
// claim is missing, any other broken rule makes the token malformed.
func (r ClaimRule) reason() reason.Reason {
	if r == ClaimAbsent || r == ClaimEmpty {
		return reason.MissingClaim
	}
	return reason.Malformed
}

// claimErr is the refusal of a token whose claim breaks rule, with a
// formatted detail. The detail's text is what clients see in
// error_description; the cause adds typed data beside it, and nothing to
// that text.
func claimErr(claim string, rule ClaimRule, format string, args ...any) *reason.Error {
	e := reason.Errorf(rule.reason(), format, args...)
	e.Cause = &ClaimError{Claim: claim, Rule: rule}
	return e
}
