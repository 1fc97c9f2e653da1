package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/testsupport"
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

// embed-inspect judges tokens against a handler it validated as the
// gateway does: a JSON config with a scope that has a value is refused
// there too (exit 2, naming the rule), not explained as if it loaded.
func TestInspectRefusesConfigThatFailsValidate(t *testing.T) {
	const secret = "acme-secret-0123456789abcdef0123"
	cfg := func(require string) string {
		dir := t.TempDir()
		p := filepath.Join(dir, "caddy.json")
		body := `{"apps":{"http":{"servers":{"s":{"listen":[":0"],"routes":[{"handle":[{"handler":"embed_session",
			"tenants":[{"id":"acme","keys":[{"secret":"` + secret + `"}],"frame_ancestors":["https://acme.example"]}],
			"require":[` + require + `]}]}]}}}}}`
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c := testsupport.Claims("acme", "jane", time.Now())
	c["scope"] = "deals:read"
	tok := testsupport.Mint(t, testsupport.HS256(secret, ""), c)
	inspect := func(config string) (int, string) { return runInspect(config, tok) }
	if code, out := inspect(cfg(`{"scope":"deals:read","value":"acme"}`)); code != exitUsage || !strings.Contains(out, `require #1: scope "deals:read" takes no value`) {
		t.Fatalf("scope with a value: exit %d, want %d naming the rule:\n%s", code, exitUsage, out)
	}
	if code, out := inspect(cfg(`{"scope":"deals:read"}`)); code != exitOK {
		t.Fatalf("scope alone: exit %d, want %d:\n%s", code, exitOK, out)
	}
}
