package policy

import (
	"net/http"
	"strings"
	"testing"
)

// BenchmarkCookieValue reads the session cookie, alone and behind the
// app's own cookies: this runs on every request with a session.
func BenchmarkCookieValue(b *testing.B) {
	session := "__Host-embed_session=" + strings.Repeat("A", 160)
	for name, line := range map[string]string{
		"Alone":       session,
		"AmongOthers": "theme=dark; lang=en; " + session,
	} {
		b.Run(name, func(b *testing.B) {
			h := http.Header{"Cookie": {line}}
			for b.Loop() {
				CookieValue(h, "__Host-embed_session")
			}
		})
	}
}
