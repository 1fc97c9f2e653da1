package caddymodule

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/embedgate/embedgate/internal/session"
)

// TestPlaceholdersAnswerTheSession: the identity placeholders read the
// verified session, and a {http.auth.user.id} that a handler before this
// one set (an attempt to pass another user to the access log and to
// header_up) is replaced by the session's subject.
func TestPlaceholdersAnswerTheSession(t *testing.T) {
	for _, preset := range []bool{false, true} {
		repl := caddy.NewReplacer()
		if preset {
			repl.Set("http.auth.user.id", "admin@evil.test")
		}
		r := httptest.NewRequest("GET", "/", nil)
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
		s := &session.Session{Tenant: "acme", Subject: "jane@acme.test"}
		setPlaceholders(r, s, map[string]any{"org": "acme-eu", "n": 3})

		for key, want := range map[string]string{
			"http.auth.user.id":    "jane@acme.test",
			"http.embed.tenant":    "acme",
			"http.embed.subject":   "jane@acme.test",
			"http.embed.claim.org": "acme-eu",
			"http.embed.claim.n":   "3",
		} {
			if got, _ := repl.GetString(key); got != want {
				t.Errorf("preset=%v: {%s} = %q, want %q", preset, key, got, want)
			}
		}
		for _, key := range []string{"http.embed.claim.missing", "http.embed.other", "http.embed.reason"} {
			if v, ok := repl.Get(key); ok {
				t.Errorf("preset=%v: {%s} = %v, want unset", preset, key, v)
			}
		}
	}
}
