package policy

import (
	"slices"
	"testing"
)

func TestParseCacheControl(t *testing.T) {
	for _, c := range []struct {
		lines []string
		want  []string // name[=arg] in order
		clean bool
	}{
		{[]string{"public, max-age=60"}, []string{"public", "max-age=60"}, true},
		{[]string{"No-Store", " private ,\tMAX-AGE = 5 "}, []string{"no-store", "private", "max-age=5"}, true},
		// A comma or a directive name inside a quoted string is the
		// argument's: the attack was a no-store hidden in an extension.
		{[]string{`public, x-note="cdn, no-store, bypass", max-age=1`}, []string{"public", "x-note=cdn, no-store, bypass", "max-age=1"}, true},
		{[]string{`private="Set-Cookie, X-A", no-cache`}, []string{"private=Set-Cookie, X-A", "no-cache"}, true},
		{[]string{`x="a\"b\\", y`}, []string{`x=a"b\`, "y"}, true},
		{[]string{"no-store="}, []string{"no-store="}, true},
		{[]string{",, ,", ""}, nil, true},
		// Malformed in ways parsers read differently: not clean.
		{[]string{`max-age="60"junk, no-store`}, []string{"max-age=60", "no-store"}, false},
		{[]string{`x="unterminated, no-store`}, []string{"x=unterminated, no-store"}, false},
		{[]string{`public, x="a`, "no-store"}, []string{"public", "x=a", "no-store"}, false},
		{[]string{`x=a"b, no-store`}, []string{`x=a"b`, "no-store"}, false},
	} {
		dirs, clean := ParseCacheControl(c.lines)
		var got []string
		for _, d := range dirs {
			s := d.Name
			if d.HasArg {
				s += "=" + d.Arg
			}
			got = append(got, s)
		}
		if !slices.Equal(got, c.want) || clean != c.clean {
			t.Errorf("ParseCacheControl(%q) = %q, %v; want %q, %v", c.lines, got, clean, c.want, c.clean)
		}
	}
}

func TestLowerASCII(t *testing.T) {
	for in, want := range map[string]string{"No-Store": "no-store", "max-age": "max-age", "\u212a-Ä": "\u212a-Ä"} {
		if got := lowerASCII(in); got != want {
			t.Errorf("lowerASCII(%q) = %q, want %q", in, got, want)
		}
	}
}
