package caddymodule_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"

	// Registers http.handlers.embed_session and the embed_session directive.
	_ "github.com/embedgate/embedgate/caddymodule"
)

// adaptDir holds the golden files, in the format of Caddy's own
// caddytest/integration/caddyfile_adapt: a Caddyfile, a line of ten dashes,
// then either the JSON the Caddyfile adapts to or, when that part does not
// start with '{', a substring of the adapt error.
const adaptDir = "testdata/caddyfile_adapt"

// TestCaddyfileAdapt adapts every golden Caddyfile with Caddy's real
// caddyfile adapter (so the directive's registered order, matchers and the
// other directives are Caddy's own) and compares the result with the
// committed JSON. A change to the syntax, a JSON field name, a default that
// leaks into the JSON, or the directive's place in the handler chain shows
// up as a diff here.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := os.ReadDir(adaptDir)
	if err != nil {
		t.Fatalf("reading %s: %v", adaptDir, err)
	}
	winNewlines := regexp.MustCompile(`\r?\n`)

	n := 0
	for _, f := range files {
		if f.IsDir() || !strings.HasSuffix(f.Name(), ".caddyfiletest") {
			continue
		}
		n++
		filename := f.Name()
		t.Run(filename, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(adaptDir, filename))
			if err != nil {
				t.Fatalf("reading %s: %v", filename, err)
			}
			parts := strings.Split(string(data), "----------")
			if len(parts) != 2 {
				t.Fatalf("%s: want one ---------- separator, found %d", filename, len(parts)-1)
			}
			// As Caddy does: a trailing newline keeps the formatter quiet.
			caddyfile := strings.TrimSpace(parts[0]) + "\n"
			expected := winNewlines.ReplaceAllString(strings.TrimSpace(parts[1]), "\n")

			if len(expected) > 0 && expected[0] == '{' {
				if !caddytest.CompareAdapt(t, filename, caddyfile, "caddyfile", expected) {
					t.Errorf("%s: adapted JSON differs from the golden file (diff above)", filename)
				}
				return
			}

			_, _, err = caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
			if err == nil {
				t.Fatalf("%s: expected an adapt error containing %q, got none", filename, expected)
			}
			if got := winNewlines.ReplaceAllString(err.Error(), "\n"); !strings.Contains(got, expected) {
				t.Errorf("%s: error\n%s\ndoes not contain\n%s", filename, got, expected)
			}
		})
	}
	if n == 0 {
		t.Fatalf("no .caddyfiletest files in %s", adaptDir)
	}
}
