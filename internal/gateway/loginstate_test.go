package gateway_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/tenant"
)

// loginCookieRE is the exact login-state Set-Cookie line: no Domain.
var loginCookieRE = regexp.MustCompile(`^__Host-embed_login=([A-Za-z0-9_-]+); Path=/; Max-Age=600; HttpOnly; Secure; SameSite=Lax$`)

const clearedLoginCookie = "__Host-embed_login=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"

// wantLoginRedirect checks a redirect to login_url under login_state
// optional or required: Location is want plus &state=<nonce>, and exactly
// one Set-Cookie sets that nonce in __Host-embed_login. It returns the
// other Set-Cookie lines.
func wantLoginRedirect(t testing.TB, res result, want string) (rest []string) {
	t.Helper()
	_, rest = loginNonce(t, res, want)
	return rest
}

// loginNonce is wantLoginRedirect that also returns the nonce.
func loginNonce(t testing.TB, res result, want string) (string, []string) {
	t.Helper()
	var nonce string
	var rest []string
	for _, line := range res.setCookies() {
		if m := loginCookieRE.FindStringSubmatch(line); m != nil {
			if nonce != "" {
				t.Fatalf("two login-state cookies: %q", res.setCookies())
			}
			nonce = m[1]
			continue
		}
		rest = append(rest, line)
	}
	if nonce == "" {
		t.Fatalf("no login-state cookie among %q", res.setCookies())
	}
	if got := res.hdrs().Get("Location"); got != want+"&state="+nonce {
		t.Fatalf("Location = %q, want %q + &state=<the cookie's nonce %s>", got, want, nonce)
	}
	if b, err := base64.RawURLEncoding.Strict().DecodeString(nonce); err != nil || len(b) < 16 {
		t.Fatalf("nonce %q: not base64url of at least 128 bits (%v)", nonce, err)
	}
	return nonce, rest
}

// withLoginState sets acme's login_state (and keeps everything else of
// tenantConfigs).
func withLoginState(mode tenant.LoginState) option {
	return func(e *env, c *gateway.Config) {
		cfgs := tenantConfigs()
		cfgs[0].LoginState = string(mode)
		reg, err := tenant.NewRegistry(cfgs)
		if err != nil {
			e.t.Fatal(err)
		}
		e.reg = reg
		c.Tenants = func() *tenant.Registry { return reg }
	}
}

// exchangeCounts records the Observer's exchange outcomes (the metrics).
type exchangeCounts struct {
	gateway.NopObserver
	whys []reason.Reason
}

func (o *exchangeCounts) Exchange(_ string, why reason.Reason) { o.whys = append(o.whys, why) }

// The redirect to login_url carries state=<nonce> and sets the nonce in
// __Host-embed_login, fresh every time, unless login_state is off.
func TestLoginRedirectState(t *testing.T) {
	want := acmeLogin + "?redirect=" + url.QueryEscape("https://"+acmeHost+"/deals")
	for _, mode := range []tenant.LoginState{"", tenant.LoginStateOptional, tenant.LoginStateRequired} {
		t.Run("mode "+string(mode), func(t *testing.T) {
			e := newEnv(t, withLoginState(mode))
			seen := map[string]bool{}
			for range 3 {
				res := e.do(newReq("GET", "/deals", nil, navigate("document"), onHost(acmeHost)))
				wantStatus(t, res, http.StatusFound)
				nonce, rest := loginNonce(t, res, want)
				if len(rest) != 0 || seen[nonce] {
					t.Fatalf("rest %q, nonce reused: %v", rest, seen[nonce])
				}
				seen[nonce] = true
			}
		})
	}
	t.Run("off", func(t *testing.T) {
		e := newEnv(t, withLoginState(tenant.LoginStateOff))
		res := e.do(newReq("GET", "/deals", nil, navigate("document"), onHost(acmeHost)))
		wantStatus(t, res, http.StatusFound)
		wantNoCookie(t, res)
		if got := res.hdrs().Get("Location"); got != want {
			t.Fatalf("Location = %q, want %q (no state)", got, want)
		}
	})
	// A login_url with a query keeps it; state comes after redirect.
	cfgs := tenantConfigs()
	cfgs[0].LoginURL = acmeLogin + "?app=crm"
	reg, err := tenant.NewRegistry(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(_ *env, c *gateway.Config) { c.Tenants = func() *tenant.Registry { return reg } })
	res := e.do(newReq("GET", "/deals", nil, navigate("document"), onHost(acmeHost)))
	loginNonce(t, res, acmeLogin+"?app=crm&redirect="+url.QueryEscape("https://"+acmeHost+"/deals"))
}

// A token link under each login_state: which nonce and cookie pass, what a
// refusal looks like (401 state_mismatch, never a new login redirect, no
// session, the jti not consumed, audited and counted), and the cookie
// cleared by the exchange that spends it.
func TestTokenLinkLoginState(t *testing.T) {
	const good = "nonce-of-this-browser-0123456789abcdef"
	cases := []struct {
		name   string
		mode   tenant.LoginState
		nonce  any // nil: no nonce claim
		cookie string
		pass   bool
	}{
		{"required, matching", tenant.LoginStateRequired, good, good, true},
		{"required, no nonce", tenant.LoginStateRequired, nil, good, false},
		{"required, no nonce, no cookie", tenant.LoginStateRequired, nil, "", false},
		{"required, nonce, no cookie", tenant.LoginStateRequired, good, "", false},
		{"required, other browser's nonce", tenant.LoginStateRequired, "attacker-nonce-0123456789abcdef0123", good, false},
		{"required, prefix of the cookie", tenant.LoginStateRequired, good[:10], good, false},
		{"required, nonce not a string", tenant.LoginStateRequired, 42, good, false},
		{"required, empty nonce", tenant.LoginStateRequired, "", "", false},
		{"optional, matching", tenant.LoginStateOptional, good, good, true},
		{"optional, no nonce", tenant.LoginStateOptional, nil, "", true},
		{"optional, no nonce, a cookie", tenant.LoginStateOptional, nil, good, true},
		{"optional, nonce, no cookie", tenant.LoginStateOptional, good, "", false},
		{"optional, other browser's nonce", tenant.LoginStateOptional, "attacker-nonce-0123456789abcdef0123", good, false},
		{"default is optional", "", "attacker-nonce-0123456789abcdef0123", good, false},
		{"off, other browser's nonce", tenant.LoginStateOff, "attacker-nonce-0123456789abcdef0123", good, true},
		{"off, no nonce", tenant.LoginStateOff, nil, "", true},
	}
	for _, tc := range cases {
		for _, nav := range []bool{true, false} {
			name := tc.name
			if !nav {
				name += ", fetch"
			}
			t.Run(name, func(t *testing.T) {
				obs := &exchangeCounts{}
				e := newEnv(t, withLoginState(tc.mode), func(_ *env, c *gateway.Config) { c.Observer = obs })
				e.remember(good)
				var edits []func(jwt.MapClaims)
				if tc.nonce != nil {
					edits = append(edits, set("nonce", tc.nonce))
				}
				tok := e.mint("acme", edits...)
				opts := []reqOpt{onHost(acmeHost)}
				if nav {
					opts = append(opts, navigate("document"), fetchSite("cross-site"))
				} else {
					opts = append(opts, xhr())
				}
				if tc.cookie != "" {
					opts = append(opts, hdr("Cookie", "__Host-embed_login="+tc.cookie))
				}
				res := e.do(newReq("GET", "/deals?x=1&embed_token="+tok, nil, opts...))
				wantNotCalled(t, res)
				if tc.pass {
					wantStatus(t, res, http.StatusSeeOther)
					if loc := res.hdrs().Get("Location"); loc != "/deals?x=1" {
						t.Fatalf("Location %q", loc)
					}
					var session, cleared int
					for _, line := range res.setCookies() {
						switch {
						case sessionCookieRE.MatchString(line):
							session++
						case line == clearedLoginCookie:
							cleared++
						default:
							t.Fatalf("unexpected Set-Cookie %q", line)
						}
					}
					if want := map[bool]int{true: 1, false: 0}[tc.cookie != ""]; session != 1 || cleared != want {
						t.Fatalf("session cookies %d, login cookie cleared %d times (want 1, %d): %q", session, cleared, want, res.setCookies())
					}
					return
				}
				wantStatus(t, res, http.StatusUnauthorized)
				if loc := res.hdrs().Get("Location"); loc != "" {
					t.Fatalf("a refusal redirects to %q", loc)
				}
				wantNoCookie(t, res)
				if nav {
					if !strings.Contains(res.Body.String(), `content="state_mismatch"`) {
						t.Fatalf("gate page does not name state_mismatch:\n%s", res.Body)
					}
					wantNoReferrer(t, res)
				} else {
					wantJSONError(t, res, http.StatusUnauthorized, "invalid_token", "state_mismatch")
				}
				ev := e.onlyEvent()
				if ev.Kind != gateway.EventReject || ev.Reason != reason.StateMismatch || ev.Tenant != "acme" || ev.Subject != subject {
					t.Fatalf("audit event %+v", ev)
				}
				if len(obs.whys) != 1 || obs.whys[0] != reason.StateMismatch {
					t.Fatalf("observer saw %v", obs.whys)
				}
				// The refusal consumed nothing: the token is still good in
				// the browser that holds its nonce (or by the start page).
				again := exchangeReq(tok)
				if s, ok := tc.nonce.(string); ok && s != "" {
					again = newReq("GET", "/deals?embed_token="+tok, nil, onHost(acmeHost), xhr(), hdr("Cookie", "__Host-embed_login="+s))
				}
				if got := e.do(again); got.Code != http.StatusNoContent && got.Code != http.StatusSeeOther {
					t.Fatalf("after the refusal the token is refused: %d %s", got.Code, got.Body)
				}
			})
		}
	}
}

// login_state binds token links only: the start page (JSON), form and
// Bearer exchanges take tokens without a nonce, or with any nonce.
func TestLoginStateLeavesOtherExchanges(t *testing.T) {
	e := newEnv(t, withLoginState(tenant.LoginStateRequired))
	for _, tc := range []struct {
		name string
		req  func(tok string) *http.Request
		want int
	}{
		{"JSON", func(tok string) *http.Request { return exchangeReq(tok) }, http.StatusNoContent},
		{"form", func(tok string) *http.Request {
			return formReq("/.embed/exchange", url.Values{"token": {tok}, "return_to": {"/deals"}})
		}, http.StatusSeeOther},
		{"Bearer", func(tok string) *http.Request {
			r := newReq(http.MethodPost, "/.embed/exchange", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			return r
		}, http.StatusNoContent},
	} {
		for _, nonce := range []any{nil, "some-other-browser-nonce"} {
			var edits []func(jwt.MapClaims)
			if nonce != nil {
				edits = append(edits, set("nonce", nonce))
			}
			res := e.do(tc.req(e.mint("acme", edits...)))
			wantStatus(t, res, tc.want)
			sessionCookie(t, res)
		}
	}
}

// wantNoReferrer is the regression check for a token leaking through
// Referer: a gate page answering a failed token link is shown at the URL
// that holds the token, still unspent, and under a same-origin policy its
// exchange POST and its navigation into the app sent that URL as Referer,
// where Caddy's access log and the app kept it for anyone to exchange.
// Both the header and the page's own meta tag must say no-referrer (the
// meta tag would override the header).
func wantNoReferrer(t *testing.T, res result) {
	t.Helper()
	if got := res.hdrs().Get("Referrer-Policy"); got != "no-referrer" {
		t.Fatalf("Referrer-Policy %q, want no-referrer", got)
	}
	if !strings.Contains(res.Body.String(), `<meta name="referrer" content="no-referrer">`) {
		t.Fatalf("the page's referrer meta tag is not no-referrer:\n%s", res.Body)
	}
}
