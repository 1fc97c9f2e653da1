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
		// Headers no request may bring to the app are not the gateway's to send either.
		{ForwardClaim{Claim: "org", Header: "Forwarded"}, "header Forwarded is reserved"},
		{ForwardClaim{Claim: "org", Header: "X_Original_URL"}, "header X_original_url is reserved"},
		{ForwardClaim{Claim: "org", Header: "X-HTTP-Method-Override"}, "header X-Http-Method-Override is reserved"},
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
