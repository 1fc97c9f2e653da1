package gateway

import (
	"strings"
	"testing"

	"github.com/embedgate/embedgate/internal/reason"
)

// embed-inspect explains state_mismatch (which only a browser's exchange
// gives: the verifier has no cookie) with the exchange's detail and the fix.
func TestExplainStateMismatch(t *testing.T) {
	x := &Explainer{}
	re := reason.Errorf(reason.StateMismatch, "the token's nonce is not this browser's cookie")
	got := Explanation{Err: re, Fix: x.fix(re, Peek{}, nil)}.Line()
	for _, want := range []string{"state_mismatch: the token's nonce is not this browser's cookie; ", "nonce = the state=", "login_url", "__Host-embed_login"} {
		if !strings.Contains(got, want) {
			t.Fatalf("line %q lacks %q", got, want)
		}
	}
}
