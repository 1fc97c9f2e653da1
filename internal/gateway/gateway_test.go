package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/tenant"
)

func TestNewRequiresDependencies(t *testing.T) {
	e := newEnv(t)
	for name, edit := range map[string]func(c *gateway.Config){
		"tenants":     func(c *gateway.Config) { c.Tenants = nil },
		"sealer":      func(c *gateway.Config) { c.Sealer = nil },
		"replay":      func(c *gateway.Config) { c.Replay = nil },
		"revocations": func(c *gateway.Config) { c.Revocations = nil },
	} {
		t.Run(name, func(t *testing.T) {
			c := e.cfg
			edit(&c)
			if g, err := gateway.New(c); err == nil || g != nil {
				t.Fatalf("New without %s: %v, %v", name, g, err)
			}
		})
	}
}

// upstreamWith answers with the given headers and body, calling WriteHeader
// only when explicit is set.
func upstreamWith(h http.Header, explicit bool) *upstream {
	return &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
		for k, vs := range h {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		if explicit {
			w.WriteHeader(http.StatusOK)
		}
		_, _ = io.WriteString(w, "app")
	}}
}

func TestFramingOfUpstreamResponses(t *testing.T) {
	cases := []struct {
		name     string
		h        http.Header
		explicit bool
		want     []string
	}{
		{"no CSP", nil, true, []string{acmeCSP}},
		{"no CSP, implicit WriteHeader", nil, false, []string{acmeCSP}},
		{"CSP with frame-ancestors *", http.Header{"Content-Security-Policy": {"default-src 'self'; frame-ancestors *"}}, true,
			[]string{"default-src 'self'; " + acmeCSP}},
		{"CSP with frame-ancestors *, implicit WriteHeader", http.Header{"Content-Security-Policy": {"default-src 'self'; frame-ancestors *"}}, false,
			[]string{"default-src 'self'; " + acmeCSP}},
		{"CSP only frame-ancestors", http.Header{"Content-Security-Policy": {"FRAME-ANCESTORS https://evil.test"}}, true,
			[]string{acmeCSP}},
		{"CSP without frame-ancestors", http.Header{"Content-Security-Policy": {"img-src 'self'"}}, true,
			[]string{"img-src 'self'; " + acmeCSP}},
		{"X-Frame-Options dropped", http.Header{"X-Frame-Options": {"DENY"}}, true, []string{acmeCSP}},
		{"X-Frame-Options dropped, implicit WriteHeader", http.Header{"X-Frame-Options": {"SAMEORIGIN"}}, false, []string{acmeCSP}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			v := e.login()
			res := e.doWith(newReq("GET", "/deals", nil, withCookie(v)), upstreamWith(tc.h, tc.explicit))
			wantStatus(t, res, 200)
			wantCalled(t, res)
			if got := res.hdrs().Values("Content-Security-Policy"); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("CSP = %q, want %q", got, tc.want)
			}
			if xfo := res.hdrs().Values("X-Frame-Options"); len(xfo) != 0 {
				t.Fatalf("X-Frame-Options %q reached the client", xfo)
			}
			if res.Body.String() != "app" {
				t.Fatalf("body %q", res.Body)
			}
		})
	}
}

func TestFramingOfUpstreamStatuses(t *testing.T) {
	for _, code := range []int{http.StatusNotFound, http.StatusInternalServerError, http.StatusNoContent, http.StatusFound} {
		e := newEnv(t)
		up := &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", "frame-ancestors *")
			w.Header().Set("X-Frame-Options", "DENY")
			w.WriteHeader(code)
		}}
		res := e.doWith(newReq("GET", "/deals", nil, withCookie(e.login())), up)
		wantStatus(t, res, code)
		wantCSP(t, res, acmeCSP)
		if res.hdrs().Get("X-Frame-Options") != "" {
			t.Fatalf("%d: X-Frame-Options kept", code)
		}
	}
}

// Responses the upstream sends without an explicit Write or WriteHeader on
// the gateway's writer must not escape the framing policy either.
func TestFramingWithoutWriteThroughTheWrapper(t *testing.T) {
	t.Run("upstream returns without writing", func(t *testing.T) {
		e := newEnv(t)
		up := &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", "frame-ancestors *")
			w.Header().Set("X-Frame-Options", "DENY")
		}}
		res := e.doWith(newReq("GET", "/deals", nil, withCookie(e.login())), up)
		wantCalled(t, res)
		wantCSP(t, res, acmeCSP)
		if res.hdrs().Get("X-Frame-Options") != "" {
			t.Fatal("X-Frame-Options kept")
		}
	})
	t.Run("upstream flushes before writing", func(t *testing.T) {
		e := newEnv(t)
		up := &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", "frame-ancestors *")
			_ = http.NewResponseController(w).Flush()
			_, _ = io.WriteString(w, "data: 1\n\n")
		}}
		res := e.doWith(newReq("GET", "/events", nil, withCookie(e.login())), up)
		wantCalled(t, res)
		wantCSP(t, res, acmeCSP)
	})
}

func TestFramingOfGatewayResponses(t *testing.T) {
	cases := []struct {
		name   string
		req    func(e *env) *http.Request
		status int
		csp    string // exact, or suffix for the gate page
		gate   bool
	}{
		{"404 under prefix", func(e *env) *http.Request { return newReq("GET", "/.embed/nope", nil) }, 404, noneCSP, false},
		{"404 under prefix, tenant host", func(e *env) *http.Request { return newReq("GET", "/.embed/", nil, onHost(globexHost)) }, 404, globexCSP, false},
		{"404 exchange with trailing slash", func(e *env) *http.Request { return newReq("POST", "/.embed/exchange/", nil) }, 404, noneCSP, false},
		{"405", func(e *env) *http.Request { return newReq("GET", "/.embed/exchange", nil) }, 405, noneCSP, false},
		{"405, tenant host", func(e *env) *http.Request { return newReq("PUT", "/.embed/signout", nil, onHost(acmeHost)) }, 405, acmeCSP, false},
		{"JSON 401 no session", func(e *env) *http.Request { return newReq("GET", "/api", nil, xhr()) }, 401, noneCSP, false},
		{"JSON 401 bad token", func(e *env) *http.Request { return exchangeReq("x.y.z") }, 401, noneCSP, false},
		{"JSON 401 verified-then-refused token", func(e *env) *http.Request {
			return exchangeReq(e.mint("acme", set("sub", "a\nb")))
		}, 401, acmeCSP, false},
		{"JSON 400", func(e *env) *http.Request {
			return jsonReq("/.embed/exchange", tokenJSON("x", "tenant", "acme"), onHost(globexHost))
		}, 400, globexCSP, false},
		{"JSON 403 origin", func(e *env) *http.Request {
			return exchangeReq(e.mint("acme"), fromOrigin(evilOrigin))
		}, 403, acmeCSP, false},
		{"JSON 403 CSRF, no tenant", func(e *env) *http.Request { return newReq("POST", "/x", nil, fromOrigin(evilOrigin)) }, 403, noneCSP, false},
		{"gate page", func(e *env) *http.Request { return newReq("GET", "/", nil, navigate("iframe")) }, 401, noneCSP, true},
		{"gate page, tenant host", func(e *env) *http.Request { return newReq("GET", "/", nil, navigate("iframe"), onHost(acmeHost)) }, 401, acmeCSP, true},
		{"gate page, tenant of an expired cookie", func(e *env) *http.Request {
			v := e.login()
			e.clock.Advance(sessionTTL)
			return newReq("GET", "/", nil, navigate("iframe"), withCookie(v))
		}, 401, acmeCSP, true},
		{"login redirect", func(e *env) *http.Request { return newReq("GET", "/", nil, navigate("document"), onHost(acmeHost)) }, 302, acmeCSP, false},
		{"exchange 204", func(e *env) *http.Request { return exchangeReq(e.mint("acme")) }, 204, acmeCSP, false},
		{"exchange 303", func(e *env) *http.Request {
			return newReq("GET", "/x?embed_token="+e.mint("globex"), nil, onHost(globexHost))
		}, 303, globexCSP, false},
		{"signout 204", func(e *env) *http.Request { return newReq("POST", "/.embed/signout", nil) }, 204, noneCSP, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			res := e.do(tc.req(e))
			wantStatus(t, res, tc.status)
			wantNotCalled(t, res)
			if tc.gate {
				got := res.hdrs().Values("Content-Security-Policy")
				if len(got) != 1 || !strings.HasSuffix(got[0], "; "+tc.csp) {
					t.Fatalf("gate CSP %q, want suffix %q", got, tc.csp)
				}
				return
			}
			wantCSP(t, res, tc.csp)
		})
	}
}

// The registry can be swapped at any moment (hot reload): a reload that
// lands while a request is being served must not turn a valid session into
// a wrong_tenant refusal (and clear the user's cookie).
func TestRegistrySwapDuringRequest(t *testing.T) {
	e := newEnv(t, func(e *env, c *gateway.Config) {
		c.Tenants = func() *tenant.Registry {
			reg, err := tenant.NewRegistry(tenantConfigs()) // a fresh, equal registry each call
			if err != nil {
				panic(err)
			}
			return reg
		}
	})
	res := e.do(exchangeReq(e.mint("globex"), onHost(globexHost)))
	wantStatus(t, res, 204)
	v, _ := sessionCookie(t, res)
	got := e.do(newReq("GET", "/deals", nil, withCookie(v), onHost(globexHost), xhr()))
	wantStatus(t, got, 200)
	wantCalled(t, got)
}

// A tenant removed by a reload takes its sessions with it.
func TestTenantRemovedByReload(t *testing.T) {
	current := tenantConfigs()
	e := newEnv(t, func(e *env, c *gateway.Config) {
		c.Tenants = func() *tenant.Registry {
			reg, err := tenant.NewRegistry(current)
			if err != nil {
				panic(err)
			}
			return reg
		}
	})
	v := e.login()
	current = current[1:] // acme removed
	res := e.do(newReq("GET", "/deals", nil, withCookie(v), xhr()))
	wantJSONError(t, res, 401, "invalid_session", "unknown_tenant")
	wantCleared(t, res)
	wantNotCalled(t, res)
}

func TestDefaultsWithoutOptionalHooks(t *testing.T) {
	e := newEnv(t)
	c := e.cfg
	c.Audit, c.OnSession, c.Expand = nil, nil, nil
	g, err := gateway.New(c)
	if err != nil {
		t.Fatal(err)
	}
	e.gw = g
	v := e.login()
	wantCalled(t, e.do(newReq("GET", "/deals", nil, withCookie(v))))
	wantStatus(t, e.do(exchangeReq("bad")), 401)
}
