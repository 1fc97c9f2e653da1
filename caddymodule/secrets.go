package caddymodule

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/embedgate/embedgate/internal/trustfile"
)

// Config values that take {env.*} and {file.*}: secrets, resolved once when
// the config loads, and the paths of the files the gateway reads.

// resolveSecret expands placeholders; an unknown or empty placeholder is an
// error rather than a literal secret. The message never shows the value: it
// names the placeholder only when the value is one placeholder and nothing
// else, since Caddy's own message quotes any {…} in the text, and a literal
// secret may hold braces.
func resolveSecret(repl *caddy.Replacer, s string) (string, error) {
	files := withCheckedFiles(repl)
	out, err := files.repl.ReplaceOrErr(s, true, true)
	if files.err != nil {
		// The file's path is config text; its content is never shown.
		return "", fmt.Errorf("resolving placeholder: %w", files.err)
	}
	if err != nil {
		return "", placeholderError(s, err)
	}
	return strings.TrimRight(out, "\r\n"), nil
}

// placeholderError wraps Caddy's error about secret s only when s is one
// placeholder and nothing else (Caddy's message quotes the failing {…} of
// the text, here config text); otherwise it says what failed without it.
func placeholderError(s string, err error) error {
	if onePlaceholder.MatchString(s) {
		return fmt.Errorf("resolving placeholder: %w", err)
	}
	what := "unknown"
	if strings.HasSuffix(err.Error(), "is empty") {
		what = "empty"
	}
	return fmt.Errorf("resolving placeholder: the value holds a placeholder that is %s (a literal { is written \\{)", what)
}

// checkedFiles is a replacer whose {file.*} reads go through
// trustfile.Read, so a file other users may write is refused; Caddy's own
// file provider, which reads any file, is left out. It trims one "\n" then
// one "\r" as Caddy's does; over trustfile.MaxKeyFile (Caddy's own limit)
// is an error rather than a cut value. A ReplacerFunc cannot fail, so the
// first read error is kept in err. One per resolution: it is not safe for
// concurrent use.
type checkedFiles struct {
	repl *caddy.Replacer
	err  error
}

func withCheckedFiles(repl *caddy.Replacer) *checkedFiles {
	c := &checkedFiles{repl: repl.WithoutFile()}
	c.repl.Map(func(key string) (any, bool) {
		path, ok := strings.CutPrefix(key, "file.")
		if !ok {
			return nil, false
		}
		b, err := trustfile.Read(path, trustfile.MaxKeyFile)
		if err != nil {
			if c.err == nil {
				c.err = err
			}
			return nil, true
		}
		return trimFileValue(b), true
	})
	return c
}

// trimFileValue is a {file.*} value as Caddy's replacer gives it: one
// trailing "\n", then one "\r", removed.
func trimFileValue(b []byte) string {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return string(bytes.TrimSuffix(b, []byte("\r")))
}

// onePlaceholder is a value that is one {env.*} or {file.*} placeholder.
var onePlaceholder = regexp.MustCompile(`^\{(env|file)\.[^{}]+\}$`)

// resolvePath expands {env.*} in a file's path and nothing else: a
// {file.*} there would read a file (a private key, say) into the path, and
// every error naming the path would show its contents. Any other
// placeholder, or an empty one, is an error (an unset {env.DIR} must not
// turn {env.DIR}/ca.pem into /ca.pem).
func resolvePath(s string) (string, error) {
	repl := caddy.NewEmptyReplacer()
	repl.Map(func(key string) (any, bool) {
		name, ok := strings.CutPrefix(key, "env.")
		if !ok {
			return nil, false
		}
		return os.Getenv(name), true
	})
	out, err := repl.ReplaceOrErr(s, true, true)
	if err != nil {
		return "", fmt.Errorf("path %q: %w; a path takes {env.*} placeholders only", s, err)
	}
	return out, nil
}

// holdsFilePlaceholder reports whether s holds a {file.*} placeholder: a
// '{' that Caddy's replacer does not take as escaped (a backslash right before
// it), then "file.". Request-time values (require) refuse it: the
// request's replacer would read the file on every request, through no
// check of its mode.
func holdsFilePlaceholder(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '{' && (i == 0 || s[i-1] != '\\') && strings.HasPrefix(s[i+1:], "file.") {
			return true
		}
	}
	return false
}
