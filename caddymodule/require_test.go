package caddymodule

import (
	"strings"
	"testing"
)

// The JSON config's require rules get the core's check (gateway.CheckRequire)
// before anything is built: a scope with a value (which the Caddyfile cannot
// write, but JSON can) is a config error naming the rule, not a rule whose
// value is dropped.
func TestValidateRefusesScopeWithValue(t *testing.T) {
	h := &Handler{Require: []Requirement{{Scope: "deals:read", Value: "acme"}}}
	h.setDefaults()
	if err := h.Validate(); err == nil || !strings.Contains(err.Error(), `require #1: scope "deals:read" takes no value`) {
		t.Fatalf("Validate: %v, want the scope's value refused", err)
	}
	h.Require[0].Value = ""
	if err := h.Validate(); err != nil {
		t.Fatalf("Validate of scope alone: %v", err)
	}
}
