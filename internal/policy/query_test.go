package policy

import "testing"

// The token parameter after ';' is the token parameter: Rack and other
// parsers split on ';', so it would otherwise reach the app and the logs.
func TestQueryParamSeparators(t *testing.T) {
	for _, c := range []struct{ raw, value, rest string }{
		{"embed_token=T", "T", ""},
		{"a=1&embed_token=T", "T", "a=1"},
		{"a=1;embed_token=T", "T", "a=1"},
		{"a=1;embed_token=T;b=2", "T", "a=1;b=2"},
		{"embed%5Ftoken=T&b=2", "T", "b=2"},
		{"a=1&b=2;embed_token=T&c=3", "T", "a=1&b=2;c=3"},
		{"embed_token=T;embed_token=U", "T", ""},
		{"a=1&&b=2", "", "a=1&&b=2"},
	} {
		has := HasQueryParam(c.raw, "embed_token")
		if has != (c.value != "") || QueryParam(c.raw, "embed_token") != c.value {
			t.Errorf("%q: has=%v value=%q, want %q", c.raw, has, QueryParam(c.raw, "embed_token"), c.value)
		}
		if c.value == "" {
			continue
		}
		if got := RemoveQueryParam(c.raw, "embed_token"); got != c.rest {
			t.Errorf("remove from %q: %q, want %q", c.raw, got, c.rest)
		}
	}
}
