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

// embed-inspect judges tokens only against a config the gateway would
// load: a JSON config with a scope that has a value is refused there too
// (exit 2, naming the handler and the rule), whichever handler holds it,
// not explained as if it loaded. Caddy refuses the whole config when one
// handler fails Validate, so a second handler's rule counts as well.
func TestInspectRefusesConfigThatFailsValidate(t *testing.T) {
	const secret = "acme-secret-0123456789abcdef0123"
	handler := func(id, require string) string {
		return `{"handler":"embed_session","tenants":[{"id":"` + id + `","keys":[{"secret":"` + secret + `"}],
			"frame_ancestors":["https://` + id + `.example"]}],"require":[` + require + `]}`
	}
	cfg := func(handlers ...string) string {
		p := filepath.Join(t.TempDir(), "caddy.json")
		body := `{"apps":{"http":{"servers":{"s":{"listen":[":0"],"routes":[{"handle":[` + strings.Join(handlers, ",") + `]}]}}}}}`
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c := testsupport.Claims("acme", "jane", time.Now())
	c["scope"] = "deals:read"
	tok := testsupport.Mint(t, testsupport.HS256(secret, ""), c)
	for _, tc := range []struct {
		name   string
		config string
		code   int
		want   string
	}{
		{"scope with a value", cfg(handler("acme", `{"scope":"deals:read","value":"acme"}`)),
			exitUsage, `embed_session #1: require #1: scope "deals:read" takes no value`},
		{"in the handler the token does not name", cfg(handler("acme", `{"scope":"deals:read"}`), handler("globex", `{"scope":"x","value":"v"}`)),
			exitUsage, `embed_session #2: require #1: scope "x" takes no value`},
		{"scope alone", cfg(handler("acme", `{"scope":"deals:read"}`), handler("globex", `{"scope":"x"}`)),
			exitOK, "valid for tenant acme"},
	} {
		if code, out := runInspect(tc.config, tok); code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d, want %d with %q:\n%s", tc.name, code, tc.code, tc.want, out)
		}
	}
}
