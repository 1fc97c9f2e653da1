package caddymodule

import (
	"strings"
	"testing"
)

// The handler's forward_claim rules are the core's (gateway.CheckUpstreamHeaders),
// run by Validate before anything is built: a rule without a claim path or
// with a header HTTP cannot send is a config error naming it.
func TestValidateRefusesUnsendableForwardClaim(t *testing.T) {
	for _, c := range []struct {
		fc   ForwardClaim
		want string
	}{
		{ForwardClaim{Header: "X-Org"}, "forward_claim #1: needs a claim path"},
		{ForwardClaim{Claim: "org", Header: "X Org"}, `forward_claim #1: header "X Org" is not a valid header name`},
		{ForwardClaim{Claim: "org"}, `forward_claim #1: header "" is not a valid header name`},
	} {
		h := &Handler{ForwardClaims: []ForwardClaim{c.fc}}
		h.setDefaults()
		if err := h.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("forward_claim %+v: %v, want %q", c.fc, err, c.want)
		}
	}
	h := &Handler{ForwardClaims: []ForwardClaim{{Claim: "org.id", Header: "X-Embed-Org"}}}
	h.setDefaults()
	if err := h.Validate(); err != nil {
		t.Errorf("well-formed forward_claim refused: %v", err)
	}
}
