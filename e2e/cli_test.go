package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The binary behaves as Caddy does and knows our module.
func TestBinaryIsCaddyWithModule(t *testing.T) {
	out, code := runBinary(t, nil, "list-modules")
	if code != 0 {
		t.Fatalf("list-modules exit %d", code)
	}
	for _, m := range []string{"http.handlers.embed_session", "http.handlers.reverse_proxy", "tls.issuance.internal"} {
		mustContain(t, out, m)
	}
	dir := t.TempDir()
	cf := filepath.Join(dir, "Caddyfile")
	_ = os.WriteFile(cf, []byte("localhost {\n\tembed_session {\n\t\ttenant acme {\n\t\t\tkey {env.S}\n\t\t}\n\t}\n\trespond ok\n}\n"), 0o600)
	out, code = runBinary(t, nil, "adapt", "--config", cf, "--adapter", "caddyfile")
	if code != 0 {
		t.Fatalf("adapt exit %d: %s", code, out)
	}
	// Ordered before basic_auth without an `order` line: embed_session comes first in the route.
	mustContain(t, out, `"handler":"embed_session"`)
	if i, j := strings.Index(out, "embed_session"), strings.Index(out, `"static_response"`); i < 0 || j < 0 || i > j {
		t.Fatalf("embed_session not ordered before respond:\n%s", out)
	}
}

// Every config error fails `embedgate validate` with a message naming the
// tenant and the field, and never the secret.
func TestBinaryValidateErrors(t *testing.T) {
	const good = "key {env.S}\n frame_ancestors https://app.acme.test"
	tests := []struct {
		name, block, want string
	}{
		{"short secret", "tenant acme {\n key short-secret-value\n}", `tenant "acme": key #1: secret is 18 bytes, at least 32 required`},
		{"unset env secret", "tenant acme {\n key {env.NOT_SET_ANYWHERE}\n}", `tenant "acme": key #1: resolving placeholder: evaluated placeholder {env.NOT_SET_ANYWHERE} is empty`},
		{"unreadable key file", "tenant acme {\n public_key /nonexistent.pem\n}", `tenant "acme": public_key #1: reading key file`},
		{"origin with path", "tenant acme {\n key {env.S}\n frame_ancestors https://a.test/x\n}", `tenant "acme": frame_ancestors: origin "https://a.test/x"`},
		{"wildcard origin", "tenant acme {\n key {env.S}\n frame_ancestors https://*.a.test\n}", `tenant "acme": frame_ancestors`},
		{"semicolon origin", "tenant acme {\n key {env.S}\n frame_ancestors https://a.test;x\n}", `tenant "acme": frame_ancestors`},
		{"comma origin", "tenant acme {\n key {env.S}\n frame_ancestors https://a.test,https://b.test\n}", `tenant "acme": frame_ancestors`},
		{"http origin", "tenant acme {\n key {env.S}\n frame_ancestors http://a.test\n}", "scheme must be https"},
		{"duplicate tenant", "tenant acme {\n " + good + "\n}\n tenant acme {\n " + good + "\n}", `tenant "acme": duplicate tenant id`},
		{"duplicate host", "tenant acme {\n " + good + "\n hosts x.test\n}\n tenant b {\n key {env.S}\n hosts x.test\n}", `host "x.test" already belongs to tenant "acme"`},
		{"unknown subdirective", "tenant acme {\n " + good + "\n colour red\n}", `unrecognized subdirective "colour"`},
		{"short session key", "tenant acme {\n " + good + "\n}\n session_key too-short", "session_key #1: 9 bytes, at least 32 required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cf := filepath.Join(t.TempDir(), "Caddyfile")
			body := "{\n\tadmin off\n\tstorage file_system " + filepath.Dir(cf) + "\n}\nlocalhost {\n embed_session {\n " + tt.block + "\n }\n respond ok\n}\n"
			_ = os.WriteFile(cf, []byte(body), 0o600)
			out, code := runBinary(t, []string{"S=" + strings.Repeat("s", 40)}, "validate", "--config", cf, "--adapter", "caddyfile")
			if code == 0 {
				t.Fatalf("validate accepted a bad config:\n%s", out)
			}
			mustContain(t, strings.ReplaceAll(out, `\"`, `"`), tt.want)
			if strings.Contains(out, "short-secret-value") || strings.Contains(out, strings.Repeat("s", 40)) {
				t.Fatalf("a secret appears in the error:\n%s", out)
			}
		})
	}
	// And the good one validates.
	cf := filepath.Join(t.TempDir(), "Caddyfile")
	_ = os.WriteFile(cf, []byte("{\n\tadmin off\n\tstorage file_system "+filepath.Dir(cf)+"\n}\nlocalhost {\n embed_session {\n tenant acme {\n "+good+"\n }\n }\n respond ok\n}\n"), 0o600)
	if out, code := runBinary(t, []string{"S=" + strings.Repeat("s", 40)}, "validate", "--config", cf, "--adapter", "caddyfile"); code != 0 {
		t.Fatalf("valid config refused: %s", out)
	}
}

// The CLI reads as embedgate: version names embedgate's version beside
// Caddy's, help shows embedgate's commands and not "$ caddy run", and
// list-modules --versions gives the module a version.
func TestBinaryNamesItself(t *testing.T) {
	out, code := runBinary(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "embedgate ") || !strings.Contains(out, "(Caddy v2.") {
		t.Fatalf("version: %d %q", code, out)
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {}} {
		out, _ = runBinary(t, nil, args...)
		if strings.Contains(out, "$ caddy run") || !strings.Contains(out, "$ embedgate run") {
			t.Fatalf("embedgate %v:\n%s", args, out)
		}
	}
	out, _ = runBinary(t, nil, "embed-mint", "--help")
	if strings.Contains(out, "Full documentation is available at:\nhttps://caddyserver.com") {
		t.Fatalf("embed-mint help points at Caddy's docs only:\n%s", out)
	}
	out, _ = runBinary(t, nil, "list-modules", "--versions")
	if !regexpMatch(`(?m)^http\.handlers\.embed_session \S+$`, out) {
		t.Fatalf("list-modules --versions:\n%s", out)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
