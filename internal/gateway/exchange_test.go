package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/replay"
)

func TestExchangeJSONSetsSessionCookie(t *testing.T) {
	e := newEnv(t)
	tok := e.mint("acme")
	res := e.do(exchangeReq(tok))
	wantStatus(t, res, http.StatusNoContent)
	wantNotCalled(t, res)
	if res.Body.Len() != 0 {
		t.Fatalf("204 with a body: %q", res.Body)
	}
	v, age := sessionCookie(t, res)
	if age != 28800 {
		t.Fatalf("Max-Age = %d, want 28800", age)
	}
	if line := res.setCookies()[0]; strings.Contains(strings.ToLower(line), "domain") {
		t.Fatalf("a __Host- cookie must not carry Domain: %q", line)
	}
	s := e.open(v)
	if s.Tenant != "acme" || s.Subject != subject {
		t.Fatalf("session = %s/%s, want acme/%s", s.Tenant, s.Subject, subject)
	}
	if !s.IssuedAt.Equal(t0) || !s.LastSeen.Equal(t0) || !s.ExpiresAt.Equal(t0.Add(sessionTTL)) {
		t.Fatalf("session times iat=%v seen=%v exp=%v", s.IssuedAt, s.LastSeen, s.ExpiresAt)
	}
	if s.ID == "" || s.Origin != "" {
		t.Fatalf("session id %q origin %q", s.ID, s.Origin)
	}
	if cc := res.hdrs().Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control = %q", cc)
	}
	wantCSP(t, res, acmeCSP)
}

func TestExchangeEncodings(t *testing.T) {
	cases := []struct {
		name     string
		build    func(tok string) *http.Request
		status   int
		location string
	}{
		{"json", func(tok string) *http.Request { return exchangeReq(tok) }, 204, ""},
		{"json with charset", func(tok string) *http.Request {
			r := exchangeReq(tok)
			r.Header.Set("Content-Type", "application/json; charset=utf-8")
			return r
		}, 204, ""},
		{"bearer", func(tok string) *http.Request {
			return newReq("POST", "/.embed/exchange", nil, hdr("Authorization", "Bearer "+tok))
		}, 204, ""},
		{"bearer scheme any case", func(tok string) *http.Request {
			return newReq("POST", "/.embed/exchange", nil, hdr("Authorization", "bearer "+tok))
		}, 204, ""},
		{"bearer with empty JSON body", func(tok string) *http.Request {
			return jsonReq("/.embed/exchange", "{}", hdr("Authorization", "Bearer "+tok))
		}, 204, ""},
		{"form", func(tok string) *http.Request {
			return formReq("/.embed/exchange", url.Values{"token": {tok}})
		}, 204, ""},
		{"form with return_to", func(tok string) *http.Request {
			return formReq("/.embed/exchange", url.Values{"token": {tok}, "return_to": {"/deals/7?tab=a%20b"}})
		}, 303, "/deals/7?tab=a%20b"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			res := e.do(tc.build(e.mint("acme")))
			wantStatus(t, res, tc.status)
			wantNotCalled(t, res)
			if got := res.hdrs().Get("Location"); got != tc.location {
				t.Fatalf("Location = %q, want %q", got, tc.location)
			}
			v, age := sessionCookie(t, res)
			if age != 28800 {
				t.Fatalf("Max-Age = %d", age)
			}
			if s := e.open(v); s.Tenant != "acme" || s.Subject != subject {
				t.Fatalf("session %s/%s", s.Tenant, s.Subject)
			}
			wantCSP(t, res, acmeCSP)
		})
	}
}

func TestExchangeReturnToMustBeLocalPath(t *testing.T) {
	for _, rt := range []string{
		"https://evil.test/x",
		"//evil.test/x",
		`/\evil.test`,
		"javascript:alert(1)",
		"x",
		"deals",
		"/\t/evil.test",
		"http:/evil.test",
	} {
		t.Run(rt, func(t *testing.T) {
			e := newEnv(t)
			tok := e.mint("acme")
			res := e.do(formReq("/.embed/exchange", url.Values{"token": {tok}, "return_to": {rt}}))
			wantJSONError(t, res, http.StatusBadRequest, "invalid_request", "bad_request")
			wantNoCookie(t, res)
			if loc := res.hdrs().Get("Location"); loc != "" {
				t.Fatalf("Location %q on a refused return_to", loc)
			}
			wantCSP(t, res, noneCSP)
			// The token was not consumed: it still exchanges.
			wantStatus(t, e.do(exchangeReq(tok)), http.StatusNoContent)
		})
	}
}

func TestExchangeFailures(t *testing.T) {
	cases := []struct {
		name string
		want reason.Reason
		req  func(e *env) *http.Request
	}{
		{"expired", reason.Expired, func(e *env) *http.Request {
			now := e.clock.Now()
			return exchangeReq(e.mint("acme", set("iat", now.Add(-150*time.Second).Unix()), set("exp", now.Add(-31*time.Second).Unix())))
		}},
		{"replayed", reason.Replayed, func(e *env) *http.Request {
			tok := e.mint("acme")
			if res := e.do(exchangeReq(tok)); res.Code != http.StatusNoContent {
				e.t.Fatalf("first exchange: %d %s", res.Code, res.Body)
			}
			return exchangeReq(tok)
		}},
		{"bad_signature", reason.BadSignature, func(e *env) *http.Request {
			return exchangeReq(e.sign(otherSecret, e.claims("acme")))
		}},
		{"unknown_tenant", reason.UnknownTenant, func(e *env) *http.Request {
			return exchangeReq(e.sign(acmeSecret, e.claims("initech")))
		}},
		{"wrong_issuer", reason.WrongIssuer, func(e *env) *http.Request {
			return jsonReq("/.embed/exchange", tokenJSON(e.mint("acme"), "tenant", "globex"))
		}},
		{"wrong_audience", reason.WrongAudience, func(e *env) *http.Request {
			return exchangeReq(e.mint("acme", set("aud", "globex")))
		}},
		{"missing_claim sub", reason.MissingClaim, func(e *env) *http.Request {
			return exchangeReq(e.mint("acme", del("sub")))
		}},
		{"missing_claim jti", reason.MissingClaim, func(e *env) *http.Request {
			return exchangeReq(e.mint("acme", del("jti")))
		}},
		{"lifetime_too_long", reason.LifetimeTooLong, func(e *env) *http.Request {
			return exchangeReq(e.mint("acme", set("exp", e.clock.Now().Add(300*time.Second).Unix())))
		}},
		{"issued_in_future", reason.IssuedInFuture, func(e *env) *http.Request {
			now := e.clock.Now()
			return exchangeReq(e.mint("acme", set("iat", now.Add(5*time.Minute).Unix()), set("exp", now.Add(6*time.Minute).Unix())))
		}},
		{"malformed: no token", reason.Malformed, func(e *env) *http.Request {
			return jsonReq("/.embed/exchange", "{}")
		}},
		{"malformed: empty body", reason.Malformed, func(e *env) *http.Request {
			return newReq("POST", "/.embed/exchange", nil)
		}},
		{"malformed: not a JWT", reason.Malformed, func(e *env) *http.Request {
			return exchangeReq("not.a.jwt")
		}},
		{"malformed: Basic auth", reason.Malformed, func(e *env) *http.Request {
			return newReq("POST", "/.embed/exchange", nil, hdr("Authorization", "Basic dXNlcjpwYXNz"))
		}},
		{"malformed: header-unsafe sub", reason.Malformed, func(e *env) *http.Request {
			return exchangeReq(e.mint("acme", set("sub", "jane\r\nX-Embed-Tenant: globex")))
		}},
		// An HTTP hop trims the spaces: the app would read jane, while the
		// gateway's revocations of jane missed this session.
		{"malformed: sub with a trailing space", reason.Malformed, func(e *env) *http.Request {
			return exchangeReq(e.mint("acme", set("sub", "jane@acme.test ")))
		}},
		{"malformed: sub with a leading space", reason.Malformed, func(e *env) *http.Request {
			return exchangeReq(e.mint("acme", set("sub", " jane@acme.test")))
		}},
		{"malformed: sub with a tab", reason.Malformed, func(e *env) *http.Request {
			return exchangeReq(e.mint("acme", set("sub", "jane\tdoe@acme.test")))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := tc.req(e)
			e.resetEvents()
			res := e.do(r)
			wantJSONError(t, res, http.StatusUnauthorized, "invalid_token", string(tc.want))
			wantNoCookie(t, res)
			wantNotCalled(t, res)
			if got := res.hdrs().Values("Content-Security-Policy"); len(got) != 1 || !strings.HasPrefix(got[0], "frame-ancestors ") {
				t.Fatalf("CSP = %q", got)
			}
			ev := e.onlyEvent()
			if ev.Kind != gateway.EventReject || ev.Reason != tc.want || ev.HotPath {
				t.Fatalf("audit event = %+v", ev)
			}
		})
	}
}

func TestExchangeRejectsOversizedBody(t *testing.T) {
	e := newEnv(t)
	body := `{"token":"` + strings.Repeat("a", 20<<10) + `"}`
	res := e.do(jsonReq("/.embed/exchange", body))
	if res.Code != http.StatusBadRequest && res.Code != http.StatusUnauthorized {
		t.Fatalf("status %d for a 20 KiB body", res.Code)
	}
	wantNoCookie(t, res)
}

// Parameter smuggling through the JSON body: a repeated member
// ({"parent_origin": A, "parent_origin": B}, where a WAF or a log reading
// the first sees another origin than the one bound into the session), a
// member in another case, a misspelt one, or data after the object. Each
// is 400 bad_request, and the token stays unspent.
func TestExchangeJSONBodyIsStrict(t *testing.T) {
	for name, body := range map[string]func(tok string) string{
		"repeated parent_origin": func(tok string) string {
			return `{"token":"` + tok + `","parent_origin":"` + evilOrigin + `","parent_origin":"` + acmeOrigin + `"}`
		},
		"repeated token":   func(tok string) string { return `{"token":"x","token":"` + tok + `"}` },
		"another case":     func(tok string) string { return `{"TOKEN":"` + tok + `"}` },
		"unknown member":   func(tok string) string { return `{"token":"` + tok + `","tenat":"acme"}` },
		"data after it":    func(tok string) string { return `{"token":"` + tok + `"} {"token":"x"}` },
		"not an object":    func(tok string) string { return `["` + tok + `"]` },
		"a non-string tok": func(string) string { return `{"token":1}` },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.mint("acme")
			res := e.do(jsonReq("/.embed/exchange", body(tok), fromOrigin(selfOrigin)))
			wantJSONError(t, res, 400, "invalid_request", "bad_request")
			wantNoCookie(t, res)
			wantStatus(t, e.do(exchangeReq(tok)), 204) // not consumed
		})
	}
	t.Run("empty body with a bearer token", func(t *testing.T) {
		e := newEnv(t)
		r := jsonReq("/.embed/exchange", "")
		r.Header.Set("Authorization", "Bearer "+e.mint("acme"))
		wantStatus(t, e.do(r), 204)
	})
}

func TestExchangeMethodNotAllowed(t *testing.T) {
	cases := []struct {
		method, path, allow string
	}{
		{"GET", "/.embed/exchange", "POST"},
		{"PUT", "/.embed/exchange", "POST"},
		{"DELETE", "/.embed/exchange", "POST"},
		{"HEAD", "/.embed/exchange", "POST"},
		{"PUT", "/.embed/signout", "GET, HEAD, POST"}, // GET is the sign-out page
		{"POST", "/.embed/session", "GET, HEAD"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			e := newEnv(t)
			res := e.do(newReq(tc.method, tc.path, nil))
			wantStatus(t, res, http.StatusMethodNotAllowed)
			if got := res.hdrs().Get("Allow"); got != tc.allow {
				t.Fatalf("Allow = %q, want %q", got, tc.allow)
			}
			wantCSP(t, res, noneCSP)
			wantNoCookie(t, res)
			wantNotCalled(t, res)
		})
	}
}

func TestExchangeNewSessionIDEachTime(t *testing.T) {
	e := newEnv(t)
	seen := map[string]bool{}
	for i := 0; i < 5; i++ {
		s := e.open(e.login())
		if seen[s.ID] {
			t.Fatalf("session id reused on exchange %d", i)
		}
		seen[s.ID] = true
	}
	// The ?embed_token= entry mints a new id too.
	res := e.do(newReq("GET", "/deals?embed_token="+e.mint("acme"), nil))
	v, _ := sessionCookie(t, res)
	if seen[e.open(v).ID] {
		t.Fatal("token parameter exchange reused a session id")
	}
}

func TestExchangeOriginPolicy(t *testing.T) {
	cases := []struct {
		name       string
		opts       []reqOpt
		tenant     string // tenant parameter, "" for none
		status     int
		wantOrigin string // bound origin on success
	}{
		{"foreign Origin", []reqOpt{fromOrigin(evilOrigin)}, "", 403, ""},
		{"foreign Origin, tenant known", []reqOpt{fromOrigin(evilOrigin)}, "acme", 403, ""},
		{"other tenant's framer", []reqOpt{fromOrigin(globexOrigin)}, "", 403, ""},
		{"Origin null", []reqOpt{fromOrigin("null")}, "", 403, ""},
		{"Origin null, tenant known", []reqOpt{fromOrigin("null")}, "acme", 403, ""},
		{"cross-site without Origin", []reqOpt{fetchSite("cross-site")}, "", 403, ""},
		{"cross-site without Origin, tenant known", []reqOpt{fetchSite("cross-site")}, "acme", 403, ""},
		{"same-site without Origin", []reqOpt{fetchSite("same-site")}, "acme", 403, ""},
		{"allowlisted cross-site Origin", []reqOpt{fromOrigin(acmeOrigin), fetchSite("cross-site")}, "", 204, acmeOrigin},
		{"allowlisted Origin, tenant known", []reqOpt{fromOrigin(acmeOrigin)}, "acme", 204, acmeOrigin},
		{"same origin", []reqOpt{fromOrigin(selfOrigin), fetchSite("same-origin")}, "", 204, ""},
		{"same origin, tenant known", []reqOpt{fromOrigin(selfOrigin)}, "acme", 204, ""},
		{"same-origin fetch metadata only", []reqOpt{fetchSite("same-origin")}, "", 204, ""},
		{"no browser headers", nil, "", 204, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.mint("acme")
			body := tokenJSON(tok)
			if tc.tenant != "" {
				body = tokenJSON(tok, "tenant", tc.tenant)
			}
			res := e.do(jsonReq("/.embed/exchange", body, tc.opts...))
			if tc.status == 403 {
				wantJSONError(t, res, 403, "forbidden", "forbidden_origin")
				wantNoCookie(t, res)
				// The jti was not consumed: the same token still works.
				wantStatus(t, e.do(exchangeReq(tok)), http.StatusNoContent)
				return
			}
			wantStatus(t, res, tc.status)
			v, _ := sessionCookie(t, res)
			if got := e.open(v).Origin; got != tc.wantOrigin {
				t.Fatalf("bound origin %q, want %q", got, tc.wantOrigin)
			}
		})
	}
}

// With the tenant named up front, the origin is refused before the token is
// even verified: a token that would fail verification gets forbidden_origin.
func TestExchangeOriginRefusedBeforeVerification(t *testing.T) {
	e := newEnv(t)
	tok := e.sign(otherSecret, e.claims("acme"))
	res := e.do(jsonReq("/.embed/exchange", tokenJSON(tok, "tenant", "acme"), fromOrigin(evilOrigin)))
	wantJSONError(t, res, 403, "forbidden", "forbidden_origin")
	wantCSP(t, res, acmeCSP)
	// The same on a tenant host, where the host names the tenant.
	res = e.do(exchangeReq(e.sign(otherSecret, e.claims("globex")), onHost(globexHost), fromOrigin(evilOrigin)))
	wantJSONError(t, res, 403, "forbidden", "forbidden_origin")
	wantCSP(t, res, globexCSP)
}

func TestExchangeTenantParameterAndHosts(t *testing.T) {
	t.Run("tenant parameter naming another tenant than the host's", func(t *testing.T) {
		e := newEnv(t)
		tok := e.mint("globex")
		res := e.do(jsonReq("/.embed/exchange", tokenJSON(tok, "tenant", "acme"), onHost(globexHost)))
		wantJSONError(t, res, 400, "invalid_request", "wrong_tenant")
		wantNoCookie(t, res)
		wantCSP(t, res, globexCSP)
		wantStatus(t, e.do(exchangeReq(tok, onHost(globexHost))), 204) // not consumed
	})
	t.Run("tenant query parameter naming another tenant than the host's", func(t *testing.T) {
		e := newEnv(t)
		res := e.do(jsonReq("/.embed/exchange?tenant=acme", tokenJSON(e.mint("globex")), onHost(globexHost)))
		wantJSONError(t, res, 400, "invalid_request", "wrong_tenant")
	})
	t.Run("unknown tenant parameter", func(t *testing.T) {
		e := newEnv(t)
		tok := e.mint("acme")
		res := e.do(jsonReq("/.embed/exchange", tokenJSON(tok, "tenant", "initech")))
		wantJSONError(t, res, 401, "invalid_token", "unknown_tenant")
		wantNoCookie(t, res)
		wantStatus(t, e.do(exchangeReq(tok)), 204) // not consumed
	})
	t.Run("form tenant parameter", func(t *testing.T) {
		e := newEnv(t)
		res := e.do(formReq("/.embed/exchange", url.Values{"token": {e.mint("acme")}, "tenant": {"acme"}}))
		wantStatus(t, res, 204)
	})
	t.Run("query tenant parameter", func(t *testing.T) {
		e := newEnv(t)
		res := e.do(jsonReq("/.embed/exchange?tenant=globex", tokenJSON(e.mint("globex")), fromOrigin(globexOrigin)))
		wantStatus(t, res, 204)
		v, _ := sessionCookie(t, res)
		if s := e.open(v); s.Tenant != "globex" || s.Origin != globexOrigin {
			t.Fatalf("session %s origin %q", s.Tenant, s.Origin)
		}
		wantCSP(t, res, globexCSP)
	})
	t.Run("acme token on globex's host", func(t *testing.T) {
		e := newEnv(t)
		tok := e.mint("acme")
		res := e.do(exchangeReq(tok, onHost(globexHost)))
		wantJSONError(t, res, 401, "invalid_token", "wrong_issuer")
		wantNoCookie(t, res)
		wantCSP(t, res, globexCSP)
		wantStatus(t, e.do(exchangeReq(tok)), 204) // not consumed
	})
	t.Run("globex token on globex's host", func(t *testing.T) {
		e := newEnv(t)
		res := e.do(exchangeReq(e.mint("globex"), onHost(globexHost), fromOrigin(globexOrigin)))
		wantStatus(t, res, 204)
		v, _ := sessionCookie(t, res)
		if s, err := e.sealer.Open(v, globexHost); err != nil || s.Tenant != "globex" {
			t.Fatalf("cookie for globex's host: %v %+v", err, s)
		}
		wantCSP(t, res, globexCSP)
	})
	t.Run("host with port and upper case", func(t *testing.T) {
		e := newEnv(t)
		res := e.do(exchangeReq(e.mint("acme"), onHost("GLOBEX.gate.test:443")))
		wantJSONError(t, res, 401, "invalid_token", "wrong_issuer")
	})
}

func TestExchangeParentOrigin(t *testing.T) {
	cases := []struct {
		name, parent string
		ok           bool
		bound        string
	}{
		{"allowlisted", acmeOrigin, true, acmeOrigin},
		{"allowlisted, non-canonical", "https://APP.acme.test:443", true, acmeOrigin},
		{"foreign", evilOrigin, false, ""},
		{"other tenant's framer", globexOrigin, false, ""},
		{"null", "null", false, ""},
		{"with a path", acmeOrigin + "/page", false, ""},
		{"http downgrade", "http://app.acme.test", false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.mint("acme")
			res := e.do(jsonReq("/.embed/exchange", tokenJSON(tok, "parent_origin", tc.parent), fromOrigin(selfOrigin)))
			if !tc.ok {
				wantJSONError(t, res, 403, "forbidden", "forbidden_origin")
				wantNoCookie(t, res)
				wantStatus(t, e.do(exchangeReq(tok)), 204) // not consumed
				return
			}
			wantStatus(t, res, 204)
			v, _ := sessionCookie(t, res)
			info := e.do(newReq("GET", "/.embed/session", nil, withCookie(v)))
			wantStatus(t, info, 200)
			var got map[string]string
			if err := json.Unmarshal(info.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got["origin"] != tc.bound {
				t.Fatalf("session origin = %q, want %q", got["origin"], tc.bound)
			}
		})
	}
	t.Run("form parent_origin", func(t *testing.T) {
		e := newEnv(t)
		res := e.do(formReq("/.embed/exchange", url.Values{"token": {e.mint("acme")}, "parent_origin": {evilOrigin}}))
		wantJSONError(t, res, 403, "forbidden", "forbidden_origin")
		wantNoCookie(t, res)
	})
}

func TestTokenParamRedirect(t *testing.T) {
	cases := []struct {
		name, target, location string
	}{
		{"middle", "/deals?x=1&embed_token=TOK&y=a%20b&x=2&z", "/deals?x=1&y=a%20b&x=2&z"},
		{"only", "/deals?embed_token=TOK", "/deals"},
		{"first", "/?embed_token=TOK&b=%2F%3F&a=", "/?b=%2F%3F&a="},
		{"last, odd encodings kept", "/p?q=a+b&r=%e2%82%ac&embed_token=TOK", "/p?q=a+b&r=%e2%82%ac"},
		{"escaped name", "/p?embed%5Ftoken=TOK&k=v", "/p?k=v"},
		{"escaped path", "/a%20b/c%2Fd?embed_token=TOK", "/a%20b/c%2Fd"},
		{"under the prefix-like path", "/.embedx?embed_token=TOK", "/.embedx"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.mint("acme")
			res := e.do(newReq("GET", strings.Replace(tc.target, "TOK", tok, 1), nil, navigate("iframe")))
			wantStatus(t, res, http.StatusSeeOther)
			wantNotCalled(t, res)
			if got := res.hdrs().Get("Location"); got != tc.location {
				t.Fatalf("Location = %q, want %q", got, tc.location)
			}
			h := res.hdrs()
			if h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "no-referrer" {
				t.Fatalf("Cache-Control %q, Referrer-Policy %q", h.Get("Cache-Control"), h.Get("Referrer-Policy"))
			}
			wantCSP(t, res, acmeCSP)
			v, age := sessionCookie(t, res)
			if age != 28800 {
				t.Fatalf("Max-Age %d", age)
			}
			if s := e.open(v); s.Tenant != "acme" || s.Subject != subject {
				t.Fatalf("session %s/%s", s.Tenant, s.Subject)
			}
			// The cookie works on the redirect target.
			wantCalled(t, e.do(newReq("GET", tc.location, nil, withCookie(v))))
		})
	}
}

func TestTokenParamNeverReachesNext(t *testing.T) {
	e := newEnv(t)
	cookie := e.login()
	// Even with a live session, a request carrying a token is answered by
	// the gateway, never forwarded with the token in its URL.
	res := e.do(newReq("GET", "/deals?embed_token="+e.mint("acme"), nil, withCookie(cookie)))
	wantStatus(t, res, http.StatusSeeOther)
	wantNotCalled(t, res)
}

func TestTokenParamFailures(t *testing.T) {
	cases := []struct {
		name string
		tok  func(e *env) string
		want reason.Reason
	}{
		{"bad signature", func(e *env) string { return e.sign(otherSecret, e.claims("acme")) }, reason.BadSignature},
		{"expired", func(e *env) string {
			now := e.clock.Now()
			return e.mint("acme", set("iat", now.Add(-3*time.Minute).Unix()), set("exp", now.Add(-2*time.Minute).Unix()))
		}, reason.Expired},
		{"replayed", func(e *env) string {
			tok := e.mint("acme")
			if res := e.do(exchangeReq(tok)); res.Code != 204 {
				e.t.Fatal(res.Code)
			}
			return tok
		}, reason.Replayed},
		{"empty", func(e *env) string { return "" }, reason.Malformed},
		{"garbage", func(e *env) string { return "garbage" }, reason.Malformed},
	}
	for _, tc := range cases {
		t.Run(tc.name+" (fetch)", func(t *testing.T) {
			e := newEnv(t)
			res := e.do(newReq("GET", "/deals?embed_token="+tc.tok(e), nil, xhr()))
			wantJSONError(t, res, 401, "invalid_token", string(tc.want))
			wantNotCalled(t, res)
			wantNoCookie(t, res)
			if res.hdrs().Get("Location") != "" {
				t.Fatal("redirect on a failed token")
			}
		})
		t.Run(tc.name+" (navigation)", func(t *testing.T) {
			e := newEnv(t)
			res := e.do(newReq("GET", "/deals?embed_token="+tc.tok(e), nil, navigate("document"), onHost(acmeHost)))
			wantStatus(t, res, 401)
			wantNotCalled(t, res)
			wantNoCookie(t, res)
			if ct := res.hdrs().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Fatalf("Content-Type %q", ct)
			}
			if !strings.Contains(res.Body.String(), `content="`+string(tc.want)+`"`) {
				t.Fatalf("gate page does not name %s: %s", tc.want, res.Body)
			}
		})
	}
	t.Run("only GET exchanges a token parameter", func(t *testing.T) {
		e := newEnv(t)
		tok := e.mint("acme")
		res := e.do(newReq("POST", "/deals?embed_token="+tok, nil))
		wantStatus(t, res, http.StatusBadRequest)
		wantNotCalled(t, res)
		wantNoCookie(t, res)
		wantStatus(t, e.do(exchangeReq(tok)), 204) // untouched
	})
}

// A real browser loads <iframe src="https://portal/deals?embed_token=…"> from
// the customer's page, and comes back from login_url with a top-level
// redirect: both are cross-site GET navigations, which carry
// Sec-Fetch-Site: cross-site and never an Origin header. The documented
// ?embed_token= entry must work for them.
func TestTokenParamBrowserNavigation(t *testing.T) {
	for _, dest := range []string{"iframe", "document"} {
		t.Run(dest, func(t *testing.T) {
			e := newEnv(t)
			res := e.do(newReq("GET", "/deals?x=1&embed_token="+e.mint("acme"), nil,
				navigate(dest), fetchSite("cross-site"), hdr("Sec-Fetch-User", "?1")))
			wantStatus(t, res, http.StatusSeeOther)
			if got := res.hdrs().Get("Location"); got != "/deals?x=1" {
				t.Fatalf("Location = %q", got)
			}
			sessionCookie(t, res)
		})
	}
}

// The 303 after ?embed_token= must stay on this origin: a request path that
// starts with "//" must not turn into a scheme-relative Location. The
// boundary refuses such a path before anything else (an app would read a
// host from it), so no token is spent and nothing redirects; the
// exchange's own check (isLocalPath) stays behind it.
func TestTokenParamRedirectStaysSameOrigin(t *testing.T) {
	for _, target := range []string{"//evil.test/x?embed_token=TOK", "///evil.test/x?embed_token=TOK", "/%2Fevil.test/x?embed_token=TOK"} {
		t.Run(target, func(t *testing.T) {
			e := newEnv(t)
			tok := e.mint("acme")
			res := e.do(newReq("GET", strings.Replace(target, "TOK", tok, 1), nil))
			wantJSONError(t, res, 400, "invalid_request", "bad_request")
			if loc := res.hdrs().Get("Location"); loc != "" {
				t.Fatalf("Location %q", loc)
			}
			// Unspent: the same token still signs in on a proper path.
			wantStatus(t, e.do(newReq("GET", "/x?embed_token="+tok, nil)), http.StatusSeeOther)
		})
	}
}

// downStore is a replay store that cannot answer.
type downStore struct{ calls int }

func (s *downStore) Claim(context.Context, string, string, time.Duration) error {
	s.calls++
	return errors.New("dial tcp 10.0.0.7:6379: connect: connection refused")
}

func TestStoreOutage(t *testing.T) {
	store := &downStore{}
	e := newEnv(t, func(_ *env, c *gateway.Config) { c.Replay = store })
	t.Run("exchange", func(t *testing.T) {
		res := e.do(exchangeReq(e.mint("acme")))
		wantJSONError(t, res, http.StatusServiceUnavailable, "temporarily_unavailable", "store_unavailable")
		if ra := res.hdrs().Get("Retry-After"); ra == "" {
			t.Fatal("no Retry-After")
		}
		wantNoCookie(t, res)
		wantCSP(t, res, acmeCSP)
	})
	t.Run("token parameter", func(t *testing.T) {
		res := e.do(newReq("GET", "/deals?embed_token="+e.mint("acme"), nil, navigate("iframe")))
		wantJSONError(t, res, http.StatusServiceUnavailable, "temporarily_unavailable", "store_unavailable")
		if ra := res.hdrs().Get("Retry-After"); ra == "" {
			t.Fatal("no Retry-After")
		}
		wantNoCookie(t, res)
		wantNotCalled(t, res)
	})
	if store.calls != 2 {
		t.Fatalf("store asked %d times, want 2", store.calls)
	}
	for _, ev := range e.eventsCopy() {
		if ev.Kind != gateway.EventReject || ev.Reason != reason.StoreUnavailable || ev.Tenant != "acme" {
			t.Fatalf("event %+v", ev)
		}
	}
}

// storeErrorCounter counts Observer.StoreError calls.
type storeErrorCounter struct {
	gateway.NopObserver
	n int
}

func (c *storeErrorCounter) StoreError() { c.n++ }

// Store failures are counted by the Observer even when nothing audits: a
// gateway.Config without the Caddy adapter's logging still gets the count.
func TestStoreErrorsCountedWithoutAudit(t *testing.T) {
	obs := &storeErrorCounter{}
	e := newEnv(t, func(_ *env, c *gateway.Config) { c.Replay = &downStore{}; c.Observer = obs; c.Audit = nil })
	wantStatus(t, e.do(exchangeReq(e.mint("acme"))), http.StatusServiceUnavailable)
	wantStatus(t, e.do(newReq("GET", "/deals?embed_token="+e.mint("acme"), nil, navigate("iframe"))), http.StatusServiceUnavailable)
	if obs.n != 2 {
		t.Fatalf("StoreError counted %d times, want 2", obs.n)
	}
}

// A store that answers with a typed reason keeps that reason.
type replayingStore struct{}

func (replayingStore) Claim(context.Context, string, string, time.Duration) error {
	return reason.Errorf(reason.Replayed, "seen")
}

func TestStoreTypedError(t *testing.T) {
	e := newEnv(t, func(_ *env, c *gateway.Config) { c.Replay = replayingStore{} })
	wantJSONError(t, e.do(exchangeReq(e.mint("acme"))), 401, "invalid_token", "replayed")
}

// recordingStore records the TTL the gateway asks for.
type recordingStore struct {
	replay.Store
	tenant, jti string
	ttl         time.Duration
}

func (s *recordingStore) Claim(ctx context.Context, tenant, jti string, ttl time.Duration) error {
	s.tenant, s.jti, s.ttl = tenant, jti, ttl
	return s.Store.Claim(ctx, tenant, jti, ttl)
}

func TestExchangeClaimsJTIForItsWholeWindow(t *testing.T) {
	rs := &recordingStore{}
	e := newEnv(t, func(e *env, c *gateway.Config) { rs.Store = e.mem; c.Replay = rs })
	tok := e.mint("acme") // exp = now + 60s, leeway 30s
	wantStatus(t, e.do(exchangeReq(tok)), 204)
	if want := 60*time.Second + 2*gateway.MaxLeeway; rs.tenant != "acme" || rs.jti != jtiOf(t, tok) || rs.ttl != want {
		t.Fatalf("Claim(%q, jti ok=%v, %v), want acme, true, %s (exp + 2·MaxLeeway)", rs.tenant, rs.jti == jtiOf(t, tok), rs.ttl, want)
	}
	// Still refused at the very end of its window.
	e.clock.Advance(89 * time.Second)
	wantJSONError(t, e.do(exchangeReq(tok)), 401, "invalid_token", "replayed")
}

func TestAuditExchange(t *testing.T) {
	e := newEnv(t)
	tok := e.mint("acme")
	res := e.do(exchangeReq(tok))
	v, _ := sessionCookie(t, res)
	s := e.open(v)
	ev := e.onlyEvent()
	want := gateway.Event{Kind: gateway.EventExchange, Tenant: "acme", Subject: subject, JTI: fp(jtiOf(t, tok)), Session: fp(s.ID)}
	if ev != want {
		t.Fatalf("event = %+v\nwant    %+v", ev, want)
	}
	if gateway.Fingerprint(s.ID) != fp(s.ID) || gateway.Fingerprint("") != "" {
		t.Fatal("Fingerprint is not the truncated SHA-256")
	}
}

func TestAuditRejectOfVerifiedToken(t *testing.T) {
	e := newEnv(t)
	tok := e.mint("acme")
	wantStatus(t, e.do(exchangeReq(tok)), 204)
	e.resetEvents()
	wantStatus(t, e.do(exchangeReq(tok)), 401)
	ev := e.onlyEvent()
	if ev.Kind != gateway.EventReject || ev.Tenant != "acme" || ev.Reason != reason.Replayed || ev.HotPath {
		t.Fatalf("replay event = %+v", ev)
	}
	// The token verified, so who replayed it and which jti are known: the
	// event must say so (subject, jti fingerprint) for the replay to be
	// investigated.
	if ev.Subject != subject || ev.JTI != fp(jtiOf(t, tok)) {
		t.Errorf("replay event lacks subject/jti fingerprint: %+v", ev)
	}
}

func TestAuditHotPathMarking(t *testing.T) {
	e := newEnv(t)
	// A crawler without a cookie: a session-path refusal, logged at Debug.
	e.resetEvents()
	e.do(newReq("GET", "/deals", nil, navigate("document")))
	if ev := e.onlyEvent(); ev.Reason != reason.SessionMissing || !ev.HotPath {
		t.Errorf("no-session refusal: %+v, want HotPath", ev)
	}
	// A failed ?embed_token= is a token exchange, not the hot path.
	e.resetEvents()
	e.do(newReq("GET", "/deals?embed_token="+e.sign(otherSecret, e.claims("acme")), nil))
	if ev := e.onlyEvent(); ev.Reason != reason.BadSignature || ev.HotPath {
		t.Errorf("token-parameter refusal: %+v, want !HotPath", ev)
	}
	// A failed POST exchange is not the hot path either.
	e.resetEvents()
	e.do(exchangeReq("garbage"))
	if ev := e.onlyEvent(); ev.Reason != reason.Malformed || ev.HotPath {
		t.Errorf("exchange refusal: %+v, want !HotPath", ev)
	}
}
