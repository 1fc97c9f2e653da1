package gateway

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/embedgate/embedgate/internal/policy"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/tenant"
)

// Login state (login_state): the gateway binds a token link to the browser
// it sent to login_url, as OAuth binds its redirect with state (RFC 9700
// §4.7) and OpenID Connect with nonce. The redirect sets a fresh nonce in
// LoginCookie and passes it as state=; the customer's login page mints the
// token with that value as its nonce claim; the ?embed_token= exchange then
// compares the two. A link minted in another browser carries a nonce that
// this browser's cookie does not hold, so it cannot sign a victim in.
const (
	// LoginCookie holds the nonce. __Host-: no Domain, Path=/, Secure.
	// SameSite=Lax, because the way back from login_url is a cross-site
	// top-level navigation.
	LoginCookie = "__Host-embed_login"
	// NonceClaim is the token claim that must equal LoginCookie's value.
	NonceClaim = "nonce"
	// loginCookieMaxAge is how long a sign-in at login_url may take, in
	// seconds.
	loginCookieMaxAge = "600"
)

// newLoginNonce is 256 random bits, base64url: never guessed, never reused.
func newLoginNonce() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// loginRedirect is the Location that sends a top-level navigation to t's
// login_url with redirect=<original>. Unless t's login_state is off, it
// also sets a fresh nonce in LoginCookie on h and passes it as state=.
func loginRedirect(h http.Header, t *tenant.Tenant, original string) string {
	sep := "?"
	if strings.Contains(t.LoginURL, "?") {
		sep = "&"
	}
	loc := t.LoginURL + sep + "redirect=" + url.QueryEscape(original)
	if t.LoginState == tenant.LoginStateOff {
		return loc
	}
	nonce := newLoginNonce()
	h.Add("Set-Cookie", LoginCookie+"="+nonce+"; Path=/; Max-Age="+loginCookieMaxAge+"; HttpOnly; Secure; SameSite=Lax")
	return loc + "&state=" + nonce
}

// clearLoginCookie is the Set-Cookie line that removes LoginCookie, with
// the attributes it was set with.
const clearLoginCookie = LoginCookie + "=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"

// checkLoginState applies t's login_state to a token link: with required,
// the token's nonce claim must equal the browser's LoginCookie (compared in
// constant time); with optional, only a token that carries a nonce is
// checked; with off, nothing is. Any failure is state_mismatch. The detail
// never holds either value.
func checkLoginState(r *http.Request, t *tenant.Tenant, claims map[string]any) error {
	if t.LoginState == tenant.LoginStateOff {
		return nil
	}
	v, has := claims[NonceClaim]
	if !has {
		if t.LoginState == tenant.LoginStateRequired {
			return reason.Errorf(reason.StateMismatch, "login_state required: the token has no nonce; mint it with the state the gateway sent to login_url")
		}
		return nil
	}
	nonce, ok := v.(string)
	if !ok || nonce == "" {
		return reason.Errorf(reason.StateMismatch, "the token's nonce is not a non-empty string")
	}
	cookie, ok := policy.CookieValue(r.Header, LoginCookie)
	if !ok {
		return reason.Errorf(reason.StateMismatch, "the token has a nonce but this browser has no %s cookie: the link was made for another browser", LoginCookie)
	}
	if subtle.ConstantTimeCompare([]byte(nonce), []byte(cookie)) != 1 {
		return reason.Errorf(reason.StateMismatch, "the token's nonce is not this browser's %s cookie: the link was made for another browser", LoginCookie)
	}
	return nil
}
