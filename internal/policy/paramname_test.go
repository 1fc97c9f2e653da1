package policy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// Names an app's framework folds into one: PHP (leading spaces, ' ' and '.'
// as '_', NUL and '[' end a name, an unclosed '[' as '_') and ASP.NET (ASCII
// case).
func TestSameParamName(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"embed_token", "embed_token", true},
		{"embed.token", "embed_token", true},
		{"embed token", "embed_token", true},
		{"  embed_token", "embed_token", true},
		{"EMBED_Token", "embed_token", true},
		{"embed_token\x00x", "embed_token", true},
		{"embed_token[]", "embed_token", true},
		{"embed_token[a]", "embed_token", true},
		{"embed[token", "embed_token", true},
		{"embed_tokens", "embed_token", false},
		{"embed_toke", "embed_token", false},
		{"embed-token", "embed_token", false},
		{"xembed_token", "embed_token", false},
		{"", "embed_token", false},
		{"", "", true},
	} {
		if got := SameParamName(c.a, c.b); got != c.same {
			t.Errorf("SameParamName(%q, %q) = %v, want %v", c.a, c.b, got, c.same)
		}
		if got := SameParamName(c.b, c.a); got != c.same {
			t.Errorf("SameParamName(%q, %q) = %v, want %v", c.b, c.a, got, c.same)
		}
	}
	if n := testing.AllocsPerRun(100, func() { SameParamName("Embed.Token", "embed_token") }); n != 0 {
		t.Errorf("SameParamName allocates %v times", n)
	}
}

// A token under a name the app folds into the token parameter's is the
// token parameter: found, and removed with every other spelling.
func TestQueryParamFolded(t *testing.T) {
	for _, raw := range []string{"embed.token=T&a=1", "embed+token=T&a=1", "%20embed_token=T&a=1",
		"EMBED_TOKEN=T&a=1", "embed_token%5B%5D=T&a=1", "embed_token%00=T&a=1"} {
		if QueryParam(raw, "embed_token") != "T" {
			t.Errorf("%q: token not found", raw)
		}
		if got := RemoveQueryParam(raw, "embed_token"); got != "a=1" {
			t.Errorf("remove from %q: %q, want a=1", raw, got)
		}
	}
	if got := RemoveQueryParam("embed_token=T&embed.token=U&b=2", "embed_token"); got != "b=2" {
		t.Errorf("every spelling is removed: %q", got)
	}
}

// Query rules read one value; parsers disagree on ';', on repeated names
// (as an app folds them) and on name[] arrays, so only an unambiguous query
// is accepted under them.
func TestCanonicalQuery(t *testing.T) {
	for _, q := range []string{"", "org=W1", "org=W1&x=2", "a%20b=1", "org_id=1&org=2", "org.id=1"} {
		if !CanonicalQuery(q) {
			t.Errorf("%q refused", q)
		}
	}
	for _, q := range []string{
		"x=;org=W2&org=W1", "org=W2&org=W1", "org[]=W2&org=W1", "org%5B%5D=1", "a=1;b=2", "org=1&%6Frg=2",
		"org=acme&+org=globex", "org=acme&%20org=globex", "org=acme&org%00=globex", "ORG=globex&org=acme",
		"org_id=acme&org.id=globex", "org_id=acme&org+id=globex", "org]=1", "or%01g=1", "org%7F=1",
	} {
		if CanonicalQuery(q) {
			t.Errorf("%q accepted", q)
		}
	}
}

// Cookie rules read one value: Caddy's placeholder takes the first cookie
// of a name, Python's and Django's parsers the last. The gateway's own
// cookies are not counted (they never reach the app).
func TestCanonicalCookies(t *testing.T) {
	own := []string{"__Host-embed_session"}
	cookies := func(lines ...string) http.Header { return http.Header{"Cookie": lines} }
	for _, h := range []http.Header{
		{},
		cookies("org=acme"),
		cookies("org=acme; theme=dark", "lang=en"),
		cookies("__Host-embed_session=a; org=acme; __Host-embed_session=b"),
		cookies("org.id=1; org=2"),
	} {
		if !CanonicalCookies(h, own) {
			t.Errorf("%q refused", h["Cookie"])
		}
	}
	for _, h := range []http.Header{
		cookies("org=acme; org=globex"),
		cookies("org=acme", "org=globex"),
		cookies("org=acme; ORG=globex"),
		cookies("org_id=acme; org.id=globex"),
		cookies("org=acme;  org =globex"),
		cookies("org[]=globex; org=acme"),
		cookies("__Host-embed_session=a; org=acme; org=globex"),
	} {
		if CanonicalCookies(h, own) {
			t.Errorf("%q accepted", h["Cookie"])
		}
	}
}

// Many names are checked in linear time, and a duplicate is still found
// among them: a megabyte of names must not cost quadratic time per request.
func TestCanonicalManyNames(t *testing.T) {
	var q, c strings.Builder
	for i := range 50000 {
		fmt.Fprintf(&q, "n%d=&", i)
		fmt.Fprintf(&c, "n%d=; ", i)
	}
	if !CanonicalQuery(q.String()) || !CanonicalCookies(http.Header{"Cookie": {c.String()}}, nil) {
		t.Fatal("distinct names refused")
	}
	if CanonicalQuery(q.String()+"N17=x") || CanonicalCookies(http.Header{"Cookie": {c.String() + "N49999=x"}}, nil) {
		t.Fatal("a duplicate among many names accepted")
	}
}
