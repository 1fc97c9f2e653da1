package token

import (
	"context"
	"errors"
	"testing"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/tenant"
)

// A refusal about one claim's presence, type or range carries a
// *ClaimError naming the claim and the rule, beside a reason and a detail
// that stay exactly what clients see. Refusals about anything else carry
// none.
func TestClaimErrorCause(t *testing.T) {
	reg := registry(t)
	for _, tc := range []struct {
		name   string
		set    map[string]any
		why    reason.Reason
		detail string
		cause  *ClaimError // nil: none
	}{
		{"no iss", map[string]any{"iss": drop}, reason.MissingClaim, "iss is required", &ClaimError{"iss", ClaimAbsent}},
		{"iss number", map[string]any{"iss": 1}, reason.Malformed, "iss is not a string", &ClaimError{"iss", ClaimNotString}},
		{"iss empty", map[string]any{"iss": ""}, reason.MissingClaim, "iss is empty", &ClaimError{"iss", ClaimEmpty}},
		{"no aud", map[string]any{"aud": drop}, reason.MissingClaim, "aud is required", &ClaimError{"aud", ClaimAbsent}},
		{"no sub", map[string]any{"sub": drop}, reason.MissingClaim, "sub is required", &ClaimError{"sub", ClaimAbsent}},
		{"sub empty", map[string]any{"sub": ""}, reason.MissingClaim, "sub is empty", &ClaimError{"sub", ClaimEmpty}},
		{"jti number", map[string]any{"jti": 7}, reason.Malformed, "jti is not a string", &ClaimError{"jti", ClaimNotString}},
		{"no iat", map[string]any{"iat": drop}, reason.MissingClaim, "iat is required", &ClaimError{"iat", ClaimAbsent}},
		{"exp string", map[string]any{"exp": "soon"}, reason.Malformed, "exp is not a number", &ClaimError{"exp", ClaimNotNumber}},
		{"nbf negative", map[string]any{"nbf": -1}, reason.Malformed, "nbf is out of range", &ClaimError{"nbf", ClaimOutOfRange}},
		{"iat in milliseconds", map[string]any{"iat": now.UnixMilli()}, reason.Malformed, "iat is out of range", &ClaimError{"iat", ClaimOutOfRange}},
		{"exp not after iat", map[string]any{"exp": now.Unix()}, reason.Malformed, "exp is not after iat", &ClaimError{"exp", ClaimNotAfterIssued}},
		{"wrong aud", map[string]any{"aud": "globex"}, reason.WrongAudience, `aud "globex", want "acme"`, nil},
		{"expired", map[string]any{"iat": at(-600), "exp": at(-540)}, reason.Expired, "expired 9m0s ago (leeway 30s)", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testVerifier().Verify(context.Background(), signAlg(t, tenant.HS256, "a1", claimsWith(tc.set)), reg, nil)
			re, ok := errors.AsType[*reason.Error](err)
			if !ok || re.Reason != tc.why || re.Detail != tc.detail || err.Error() != string(tc.why)+": "+tc.detail {
				t.Fatalf("err %v, want %s: %s", err, tc.why, tc.detail)
			}
			ce, ok := errors.AsType[*ClaimError](err)
			if tc.cause == nil {
				if ok {
					t.Fatalf("cause %+v, want none", ce)
				}
				return
			}
			if !ok || *ce != *tc.cause {
				t.Fatalf("cause %+v, want %+v", ce, tc.cause)
			}
			if !errors.Is(err, tc.why.Err()) {
				t.Fatal("errors.Is on the reason no longer matches")
			}
		})
	}
}

// Each rule maps to one reason: absent and empty are missing, the rest
// malformed.
func TestClaimRuleReason(t *testing.T) {
	for rule, want := range map[ClaimRule]reason.Reason{
		ClaimAbsent: reason.MissingClaim, ClaimEmpty: reason.MissingClaim,
		ClaimNotString: reason.Malformed, ClaimNotNumber: reason.Malformed, ClaimOutOfRange: reason.Malformed, ClaimNotAfterIssued: reason.Malformed,
	} {
		if got := claimErr("x", rule, "x").Reason; got != want {
			t.Errorf("%s: %s, want %s", rule, got, want)
		}
	}
}
