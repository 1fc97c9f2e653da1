package gateway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRefreshedCookieNeverOnSharedCacheableResponse stops session theft
// through a shared cache: a sliding refresh puts a new session cookie on
// whatever the app answers, and a static asset the app marks "public,
// max-age=…" (or s-maxage, or a CDN-Cache-Control a CDN obeys instead) went
// to a CDN in front of the gateway with the user's session in its
// Set-Cookie, for the CDN to hand to every later visitor.
func TestRefreshedCookieNeverOnSharedCacheableResponse(t *testing.T) {
	for name, upstreamCC := range map[string]string{
		"public max-age": "public, max-age=31536000, immutable",
		"s-maxage":       "s-maxage=600",
		"max-age only":   "max-age=600",
		"no-store":       "no-store",
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			v := e.login()
			e.clock.Advance(16 * time.Minute) // past idle/2: the cookie is re-sealed
			up := &upstream{respond: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/css")
				w.Header().Set("Cache-Control", upstreamCC)
				w.Header().Set("CDN-Cache-Control", "max-age=86400")
				w.Header().Set("Cloudflare-CDN-Cache-Control", "max-age=86400")
				w.Header().Set("Surrogate-Control", "max-age=86400")
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write([]byte("body{}"))
			}}
			res := e.doWith(newReq("GET", "/app.css", nil, withCookie(v)), up)
			wantCalled(t, res)
			sessionCookie(t, res) // the refreshed session cookie is on this response
			cc := strings.ToLower(strings.Join(res.hdrs().Values("Cache-Control"), ", "))
			if strings.Contains(cc, "public") || strings.Contains(cc, "s-maxage") ||
				!(strings.Contains(cc, "private") || strings.Contains(cc, "no-store")) {
				t.Fatalf("a response carrying the session's Set-Cookie has Cache-Control %q: a shared cache may store the cookie", cc)
			}
			for _, f := range []string{"CDN-Cache-Control", "Cloudflare-CDN-Cache-Control", "Surrogate-Control"} {
				if v := res.hdrs().Get(f); v != "" {
					t.Errorf("%s: %q still tells a CDN to store the session's Set-Cookie", f, v)
				}
			}
		})
	}
}

// TestCacheControlKeptWithoutRefresh: the app's own caching is left alone
// when the gateway adds no cookie, and a no-store it sent is kept as it is.
func TestCacheControlKeptWithoutRefresh(t *testing.T) {
	e := newEnv(t)
	v := e.login()
	public := &upstream{respond: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.WriteHeader(http.StatusOK)
	}}
	res := e.doWith(newReq("GET", "/app.css", nil, withCookie(v)), public)
	wantNoCookie(t, res)
	if cc := res.hdrs().Get("Cache-Control"); cc != "public, max-age=600" {
		t.Fatalf("Cache-Control %q: the app's own caching was changed without a cookie on the response", cc)
	}
	e.clock.Advance(16 * time.Minute)
	noStore := &upstream{respond: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "no-store, max-age=0")
		w.WriteHeader(http.StatusOK)
	}}
	res = e.doWith(newReq("GET", "/deals", nil, withCookie(v)), noStore)
	sessionCookie(t, res)
	if cc := res.hdrs().Get("Cache-Control"); cc != "no-store, max-age=0" {
		t.Fatalf("Cache-Control %q: the app's no-store was rewritten", cc)
	}
}

// TestRefreshedCookieCDNOnlyFieldsDropped: the fields a cache in front of
// the gateway obeys instead of Cache-Control are more than RFC 9213's and
// Fastly's: Akamai reads Edge-Control, nginx's proxy_cache X-Accel-Expires
// (both take priority over Cache-Control there). Left on a response that
// carries the refreshed session cookie, they still have it stored.
func TestRefreshedCookieCDNOnlyFieldsDropped(t *testing.T) {
	e := newEnv(t)
	v := e.login()
	e.clock.Advance(16 * time.Minute) // past idle/2: the cookie is re-sealed
	up := &upstream{respond: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Edge-Control", "!no-store, max-age=86400")
		w.Header().Set("X-Accel-Expires", "86400")
		w.WriteHeader(http.StatusOK)
	}}
	res := e.doWith(newReq("GET", "/app.css", nil, withCookie(v)), up)
	sessionCookie(t, res)
	for _, f := range []string{"Edge-Control", "X-Accel-Expires"} {
		if got := res.hdrs().Get(f); got != "" {
			t.Errorf("%s: %q still tells the cache in front to store the session's Set-Cookie", f, got)
		}
	}
}
