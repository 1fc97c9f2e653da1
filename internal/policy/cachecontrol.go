package policy

import (
	"iter"
	"strings"
)

// CacheDirectives yields each directive of Cache-Control field lines (RFC
// 9111 section 5.2) as its name in ASCII lower case and its argument, a
// quoted string unquoted. A comma inside a quoted string separates
// nothing: `x-note="cdn, no-store"` is one extension directive, not
// no-store, which splitting on every comma took it for.
func CacheDirectives(lines []string) iter.Seq2[string, string] {
	return func(yield func(name, arg string) bool) {
		for _, line := range lines {
			for rest := line; rest != ""; {
				var name, arg string
				name, arg, rest = nextCacheDirective(rest)
				if name != "" && !yield(strings.ToLower(name), arg) {
					return
				}
			}
		}
	}
}

// nextCacheDirective reads one directive off s: its name, its argument and
// what follows the comma that ends it.
func nextCacheDirective(s string) (name, arg, rest string) {
	end := strings.IndexAny(s, ",=")
	if end < 0 {
		return trimOWS(s), "", ""
	}
	name = trimOWS(s[:end])
	if s[end] == ',' {
		return name, "", s[end+1:]
	}
	s = trimOWS(s[end+1:])
	if !strings.HasPrefix(s, `"`) {
		arg, rest, _ = strings.Cut(s, ",")
		return name, trimOWS(arg), rest
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
			// Whatever stands between the closing quote and the next comma
			// is not part of any directive.
			_, rest, _ = strings.Cut(s[i+1:], ",")
			return name, b.String(), rest
		default:
			b.WriteByte(c)
		}
	}
	return name, b.String(), "" // unterminated: the quote runs to the end
}
