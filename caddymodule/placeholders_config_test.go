package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// A secret's placeholder error never quotes the secret: Caddy's own message
// quotes any {…} in the text, so a literal secret holding braces showed
// part of itself in a config-load error and admin /load's answer.
func TestResolveSecretNeverQuotesTheValue(t *testing.T) {
	repl := caddy.NewReplacer()
	_, err := resolveSecret(repl, "0123456789{part-of-the-secret}abcdef0123456789")
	if err == nil || strings.Contains(err.Error(), "part-of-the-secret") {
		t.Fatalf("literal secret with braces: %v, want an error that quotes none of it", err)
	}
	// A value that is one placeholder is config text: it is named.
	_, err = resolveSecret(repl, "{env.EG_TEST_UNSET_SECRET}")
	if err == nil || !strings.Contains(err.Error(), "{env.EG_TEST_UNSET_SECRET}") {
		t.Fatalf("unset env placeholder: %v, want it named", err)
	}
	t.Setenv("EG_TEST_SECRET", "from-env\n")
	if got, err := resolveSecret(repl, "{env.EG_TEST_SECRET}"); err != nil || got != "from-env" {
		t.Fatalf("env placeholder: %q, %v", got, err)
	}
}

// A file's path takes {env.*} only. With {file.*} accepted, `key
// {file./run/secrets/assertion.pem}` read the private key into the path,
// and the open error that followed printed the whole key into Caddy's log
// and admin /load's answer. The same holds for the Redis TLS files.
func TestFilePathsNeverReadFiles(t *testing.T) {
	dir := t.TempDir()
	const secret = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGsecretsecret\n-----END PRIVATE KEY-----\n"
	pemFile := filepath.Join(dir, "assertion.pem")
	if err := os.WriteFile(pemFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := resolvePath("{file." + pemFile + "}"); err == nil || strings.Contains(got+err.Error(), "secretsecret") {
		t.Fatalf("resolvePath({file.*}) = %q, %v: want refused, without the file's contents", got, err)
	}
	t.Setenv("EG_TEST_DIR", dir)
	if got, err := resolvePath("{env.EG_TEST_DIR}/assertion.pem"); err != nil || got != pemFile {
		t.Fatalf("resolvePath({env.*}) = %q, %v, want %q", got, err, pemFile)
	}
	// An unset variable is an error, not a path from the root.
	if got, err := resolvePath("{env.EG_TEST_UNSET_DIR}/ca.pem"); err == nil {
		t.Fatalf("resolvePath with an unset variable = %q, want an error", got)
	}
	_, err := loadAssertionKeys([]AssertionKey{{File: "{file." + pemFile + "}"}})
	if err == nil || strings.Contains(err.Error(), "secretsecret") || strings.Contains(err.Error(), "BEGIN") {
		t.Fatalf("assertion key at a {file.*} path: %v, want an error without the file's contents", err)
	}
	_, _, err = redisTLS(&StoreTLS{CA: "{file." + pemFile + "}"}, "rediss://127.0.0.1:1")
	if err == nil || strings.Contains(err.Error(), "secretsecret") || strings.Contains(err.Error(), "BEGIN") {
		t.Fatalf("redis tls ca at a {file.*} path: %v, want an error without the file's contents", err)
	}
}
