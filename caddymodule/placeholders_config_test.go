package caddymodule

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/embedgate/embedgate/internal/tenant"
	"github.com/embedgate/embedgate/internal/trustfile"
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

// Attack: a file others may write, named where the gateway reads a secret
// ({file.*} in a session key, an HS256 secret, a Redis URL), a key digest
// (api_keys) or a key (assertion keys, Redis TLS files), lets any local
// user put their own value in and mint sessions, tokens or assertions. Each
// is refused with trustfile.ErrWritableByOthers, without the file's content.
func TestTrustedFilesWritableByOthersRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("mode bits say nothing on Windows")
	}
	const content = "secret-material-0123456789abcdef0123456789"
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	repl := caddy.NewReplacer()
	if got, err := resolveSecret(repl, "{file."+path+"}"); err != nil || got != content {
		t.Fatalf("a 0600 secret file: %q, %v", got, err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, trustfile.ErrWritableByOthers) || strings.Contains(err.Error(), content) {
			t.Errorf("%s at mode 0666: %v; want ErrWritableByOthers, without the content", what, err)
		}
	}
	_, err := resolveSecret(repl, "{file."+path+"}")
	refused("a {file.*} secret", err)
	_, err = resolveSecret(repl, "prefix-{file."+path+"}")
	refused("a {file.*} inside a secret", err)
	_, err = registryFromConfigs(context.Background(), []tenant.Config{{
		ID: "acme", Keys: []tenant.SecretConfig{{Secret: strings.Repeat("s", 32)}},
		APIKeys: []string{"{file." + path + "}"},
	}}, repl, nil, nil)
	refused("api_keys from {file.*}", err)
	_, err = loadAssertionKeys([]AssertionKey{{File: path}})
	refused("an assertion key file", err)
	_, _, err = redisTLS(&StoreTLS{CA: path}, "rediss://127.0.0.1:1")
	refused("a Redis TLS CA file", err)

	// An escaped placeholder is literal text, and names no file.
	if _, err := resolveSecret(repl, `0123456789abcdef0123456789\{file.`+path+`\}`); err != nil {
		t.Fatalf("an escaped {file.*}: %v, want the literal accepted", err)
	}
	// The file checked is the one Caddy's parser names, braces and
	// escaped braces included.
	dir := t.TempDir()
	for _, name := range []string{"a{b", `c\}d`} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := resolveSecret(repl, "{file."+p+"}"); err != nil || got != content {
			t.Fatalf("{file.%s} at 0600: %q, %v; want the content", p, got, err)
		}
		if err := os.Chmod(p, 0o666); err != nil {
			t.Fatal(err)
		}
		_, err := resolveSecret(repl, "{file."+p+"}")
		refused("{file."+p+"}", err)
	}
	// embed-mint --key-file reads the file it names, checked the same way.
	_, err = mintKey(path, "")
	refused("embed-mint --key-file", err)
}

// A require value is expanded with the request's replacer, whose {file.*}
// reads a file on every request and checks nothing: refused at load, so a
// rule's value can never come from a file anyone may write.
func TestRequireRefusesFilePlaceholder(t *testing.T) {
	for _, v := range []string{"{file./etc/embed/org}", "org-{file.x}"} {
		h := &Handler{Require: []Requirement{{Claim: "org", Value: v}}}
		h.setDefaults()
		if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "require #1: value: a {file.*} placeholder") {
			t.Errorf("require value %q: %v; want refused", v, err)
		}
	}
	for _, v := range []string{"{http.request.uri.path.1}", `\{file.x}`, "acme"} {
		h := &Handler{Require: []Requirement{{Claim: "org", Value: v}}}
		h.setDefaults()
		if err := h.Validate(); err != nil {
			t.Errorf("require value %q: %v; want accepted", v, err)
		}
	}
}
