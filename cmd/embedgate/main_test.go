package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestHelpAndVersionArgs(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{nil, []string{"help"}},
		{[]string{"--help"}, []string{"help"}},
		{[]string{"-h"}, []string{"help"}},
		{[]string{"--version"}, []string{"version"}},
		{[]string{"embed-mint", "--help"}, []string{"help", "embed-mint"}},
		{[]string{"run", "--config", "x", "-h"}, []string{"run", "--config", "x", "-h"}},
		{[]string{"run", "--config", "x"}, []string{"run", "--config", "x"}},
	} {
		if got := helpAndVersionArgs(c.in); !slices.Equal(got, c.want) {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
	}
}

// list-modules --versions names embedgate's version on its own modules,
// which Caddy prints without one (it is the main module here).
func TestAddModuleVersions(t *testing.T) {
	in := "http.handlers.file_server v2.11.9\nadmin.api.embed_session\nhttp.handlers.embed_session\n\n  Standard modules: 1\n"
	var out bytes.Buffer
	addModuleVersions(strings.NewReader(in), &out, "v1.2.3")
	want := "http.handlers.file_server v2.11.9\nadmin.api.embed_session v1.2.3\nhttp.handlers.embed_session v1.2.3\n\n  Standard modules: 1\n"
	if out.String() != want {
		t.Fatalf("got\n%s", out.String())
	}
}

func TestVersionLineNamesBoth(t *testing.T) {
	v := versionLine()
	if !strings.HasPrefix(v, "embedgate ") || !strings.Contains(v, "(Caddy ") {
		t.Fatalf("%q", v)
	}
}
