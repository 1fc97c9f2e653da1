package policy

import (
	"slices"
	"testing"
)

func TestCacheDirectives(t *testing.T) {
	for _, c := range []struct {
		lines []string
		want  []string // name=arg pairs
	}{
		{[]string{"public, max-age=60"}, []string{"public=", "max-age=60"}},
		{[]string{"No-Store", " private ,\tMAX-AGE = 5 "}, []string{"no-store=", "private=", "max-age=5"}},
		// A comma or a directive name inside a quoted string is the
		// argument's: the attack was a no-store hidden in an extension.
		{[]string{`public, x-note="cdn, no-store, bypass", max-age=1`}, []string{"public=", "x-note=cdn, no-store, bypass", "max-age=1"}},
		{[]string{`private="Set-Cookie, X-A", no-cache`}, []string{"private=Set-Cookie, X-A", "no-cache="}},
		{[]string{`x="a\"b\\", y`}, []string{`x=a"b\`, "y="}},
		{[]string{`max-age="60"junk, no-store`}, []string{"max-age=60", "no-store="}},
		{[]string{`x="unterminated, no-store`}, []string{"x=unterminated, no-store"}},
		{[]string{",, ,", ""}, nil},
	} {
		var got []string
		for name, arg := range CacheDirectives(c.lines) {
			got = append(got, name+"="+arg)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("CacheDirectives(%q) = %q, want %q", c.lines, got, c.want)
		}
	}
}
