package policy

import "strings"

// CacheDirective is one Cache-Control directive: its name in ASCII lower
// case and its argument, a quoted string unquoted; HasArg when an '='
// followed the name.
type CacheDirective struct {
	Name, Arg string
	HasArg    bool
}

// ParseCacheControl reads Cache-Control field lines (RFC 9111 section 5.2)
// into their directives. A comma inside a quoted string separates nothing:
// `x-note="cdn, no-store"` is one extension directive, not no-store, which
// splitting on every comma took it for. clean is false when the field is
// malformed in a way that parsers read differently: a quote left open
// (lines joined with ", ", as RFC 9110 section 5.3 allows, would put the
// next line inside it) or anything between a closing quote and the next
// comma. A caller deciding safety by a directive's presence trusts it only
// when clean.
func ParseCacheControl(lines []string) (dirs []CacheDirective, clean bool) {
	clean = true
	for _, line := range lines {
		for rest := line; rest != ""; {
			var d CacheDirective
			var ok bool
			d, rest, ok = nextCacheDirective(rest)
			clean = clean && ok
			if d.Name != "" {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs, clean
}

// nextCacheDirective reads one directive off s: the directive, what follows
// the comma that ends it, and whether it was well formed.
func nextCacheDirective(s string) (d CacheDirective, rest string, ok bool) {
	end := strings.IndexAny(s, ",=")
	if end < 0 {
		return CacheDirective{Name: lowerASCII(trimOWS(s))}, "", true
	}
	d.Name = lowerASCII(trimOWS(s[:end]))
	if s[end] == ',' {
		return d, s[end+1:], true
	}
	d.HasArg = true
	s = trimOWS(s[end+1:])
	if !strings.HasPrefix(s, `"`) {
		arg, rest, _ := strings.Cut(s, ",")
		d.Arg = trimOWS(arg)
		return d, rest, !strings.Contains(d.Arg, `"`)
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			d.Arg = b.String()
			junk, rest, _ := strings.Cut(s[i+1:], ",")
			return d, rest, trimOWS(junk) == ""
		default:
			b.WriteByte(c)
		}
	}
	d.Arg = b.String()
	return d, "", false // the quote runs to the end
}
