package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/session"
)

var forwarded = []gateway.ForwardClaim{
	{Claim: "dept", Header: "X-Dept"},
	{Claim: "level", Header: "X-Level"},
	{Claim: "score", Header: "X-Score"},
	{Claim: "big", Header: "X-Big"},
	{Claim: "org", Header: "X-Org"},
	{Claim: "org.name", Header: "X-Org-Name"},
	{Claim: "roles", Header: "X-Roles"},
	{Claim: "absent", Header: "X-Absent"},
}

func richClaims(c jwt.MapClaims) {
	c["dept"] = "sales & ops"
	c["level"] = 42
	c["score"] = json.Number("1.5")
	c["big"] = json.Number("12345678901234567890")
	c["org"] = map[string]any{"name": "Acme", "id": 7}
	c["roles"] = []string{"admin", "dev"}
}

// forgedHeaders are identity headers a client tries to smuggle upstream.
func forgedHeaders() []reqOpt {
	return []reqOpt{
		hdr("X-Embed-Subject", "mallory"),
		hdr("X-Embed-Subject", "mallory2"),
		rawHdr("x-embed-tenant", "globex"),
		rawHdr("X-EMBED-TENANT", "globex"),
		rawHdr("X_Embed_Subject", "mallory"),
		rawHdr("x_embed_tenant", "globex"),
		hdr("X-Embed-Role", "admin"),
		hdr("X-Dept", "forged"),
		rawHdr("x-dept", "forged"),
		rawHdr("X_Dept", "forged"),
		rawHdr("x_org_name", "forged"),
		hdr("X-Absent", "forged"),
		hdr("X-Other", "kept"),
	}
}

// TestSessionForwardsIdentity also checks that none of the gateway's own
// cookies reaches the app: the login-state nonce is the state= value a
// login CSRF needs, so it must not land in the app's request logs.
func TestSessionForwardsIdentity(t *testing.T) {
	e := newEnv(t, withForward(forwarded...))
	v := e.login(richClaims)
	opts := append(forgedHeaders(), hdr("Cookie", "a=1; "+cookieName+"="+v+"; b=2"), hdr("Cookie", gateway.LoginCookie+"=nonce; c=3"))
	res := e.do(newReq("GET", "/deals", nil, opts...))
	wantStatus(t, res, 200)
	wantCalled(t, res)
	if res.Body.String() != "app" {
		t.Fatalf("body %q", res.Body)
	}
	want := http.Header{
		"X-Embed-Tenant":  {"acme"},
		"X-Embed-Subject": {subject},
		"X-Dept":          {"sales & ops"},
		"X-Level":         {"42"},
		"X-Score":         {"1.5"},
		"X-Big":           {"12345678901234567890"},
		"X-Org":           {`{"id":7,"name":"Acme"}`},
		"X-Org-Name":      {"Acme"},
		"X-Roles":         {`["admin","dev"]`},
		"X-Other":         {"kept"},
		"Cookie":          {"a=1; b=2", "c=3"},
	}
	got := res.up.headers.Clone()
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected upstream header %s: %q", k, got[k])
		}
	}
	for k, vs := range want {
		if !reflect.DeepEqual(got[k], vs) {
			t.Errorf("upstream %s = %q, want %q", k, got[k], vs)
		}
	}
}

func TestStripInboundWithoutSession(t *testing.T) {
	targets := []struct {
		name   string
		method string
		path   string
	}{
		{"app path", "GET", "/deals"},
		{"unsafe app path", "POST", "/deals"},
		{"exchange endpoint", "POST", "/.embed/exchange"},
		{"session endpoint", "GET", "/.embed/session"},
		{"token parameter", "GET", "/deals?embed_token=x"},
	}
	for _, tc := range targets {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withForward(forwarded...))
			r := newReq(tc.method, tc.path, nil, forgedHeaders()...)
			res := e.do(r)
			wantNotCalled(t, res)
			for k := range r.Header {
				lk := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
				if strings.HasPrefix(lk, "x-embed-") || lk == "x-dept" || lk == "x-absent" || lk == "x-org-name" {
					t.Errorf("inbound %s survived", k)
				}
			}
			if r.Header.Get("X-Other") != "kept" {
				t.Error("an unrelated header was removed")
			}
		})
	}
}

func TestOnSessionHook(t *testing.T) {
	e := newEnv(t, withForward(gateway.ForwardClaim{Claim: "dept", Header: "X-Dept"}))
	v := e.login(set("dept", "sales"))
	e.do(newReq("GET", "/deals", nil, withCookie(v)))
	if len(e.hooked) != 1 {
		t.Fatalf("OnSession called %d times", len(e.hooked))
	}
	s := e.hooked[0]
	if s.Tenant != "acme" || s.Subject != subject || s.ID != e.open(v).ID {
		t.Fatalf("hook got %+v", s)
	}
	if !reflect.DeepEqual(e.hookClaims[0], map[string]any{"dept": "sales"}) {
		t.Fatalf("hook claims %v", e.hookClaims[0])
	}
	// Not called without a session.
	e.do(newReq("GET", "/deals", nil))
	if len(e.hooked) != 1 {
		t.Fatal("OnSession called without a session")
	}
}

func TestNoSession(t *testing.T) {
	loginRedirect := func(orig string) string { return acmeLogin + "?redirect=" + url.QueryEscape(orig) }
	cases := []struct {
		name     string
		host     string
		target   string
		opts     []reqOpt
		status   int
		html     bool
		location string
		csp      string
	}{
		{"iframe navigation, no tenant", "", "/deals", []reqOpt{navigate("iframe")}, 401, true, "", noneCSP},
		{"iframe navigation, tenant host", acmeHost, "/deals", []reqOpt{navigate("iframe"), fetchSite("cross-site")}, 401, true, "", acmeCSP},
		{"iframe navigation, globex", globexHost, "/", []reqOpt{navigate("iframe")}, 401, true, "", globexCSP},
		{"top-level navigation with login_url", acmeHost, "/deals/7?tab=a%20b&x=1", []reqOpt{navigate("document"), fetchSite("none")}, 302, false,
			loginRedirect("https://acme.gate.test/deals/7?tab=a%20b&x=1"), acmeCSP},
		{"legacy top-level navigation", acmeHost, "/deals", []reqOpt{hdr("Accept", "text/html")}, 302, false,
			loginRedirect("https://acme.gate.test/deals"), acmeCSP},
		{"top-level navigation without login_url", globexHost, "/deals", []reqOpt{navigate("document")}, 401, true, "", globexCSP},
		{"top-level navigation, no tenant known", "", "/deals", []reqOpt{navigate("document")}, 401, true, "", noneCSP},
		{"XHR", "", "/api/deals", []reqOpt{xhr()}, 401, false, "", noneCSP},
		{"XHR on a tenant host", acmeHost, "/api/deals", []reqOpt{xhr()}, 401, false, "", acmeCSP},
		{"no headers at all", acmeHost, "/api/deals", nil, 401, false, "", acmeCSP},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			opts := tc.opts
			if tc.host != "" {
				opts = append(opts, onHost(tc.host))
			}
			res := e.do(newReq("GET", tc.target, nil, opts...))
			wantNotCalled(t, res)
			if tc.location == "" {
				wantNoCookie(t, res)
			}
			h := res.hdrs()
			if h.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", h.Get("Cache-Control"))
			}
			switch {
			case tc.location != "":
				wantStatus(t, res, 302)
				if rest := wantLoginRedirect(t, res, tc.location); len(rest) != 0 {
					t.Fatalf("more Set-Cookie: %q", rest)
				}
				wantCSP(t, res, tc.csp)
			case tc.html:
				wantStatus(t, res, 401)
				if ct := h.Get("Content-Type"); ct != "text/html; charset=utf-8" {
					t.Fatalf("Content-Type %q", ct)
				}
				if !strings.Contains(res.Body.String(), `content="session_missing"`) {
					t.Fatalf("gate page: %s", res.Body)
				}
				if csp := h.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "; "+tc.csp) || !strings.HasPrefix(csp, "default-src 'none'") {
					t.Fatalf("gate CSP %q, want it to end with %q", csp, tc.csp)
				}
			default:
				wantJSONError(t, res, 401, "invalid_session", "session_missing")
				wantCSP(t, res, tc.csp)
			}
		})
	}
}

// A direct link with a session that has ended (the cookie names the tenant)
// sends a top-level navigation to the tenant's login page.
func TestEndedSessionTopLevelGoesToLogin(t *testing.T) {
	e := newEnv(t)
	v := e.login()
	e.clock.Advance(sessionTTL + time.Second)
	res := e.do(newReq("GET", "/deals?x=1", nil, withCookie(v), navigate("document")))
	wantStatus(t, res, 302)
	if rest := wantLoginRedirect(t, res, acmeLogin+"?redirect="+url.QueryEscape(selfOrigin+"/deals?x=1")); len(rest) != 1 || rest[0] != clearedCookie {
		t.Fatalf("want the session cookie cleared with %q, got %q", clearedCookie, rest)
	}
	wantNotCalled(t, res)
}

func TestUnsafeMethods(t *testing.T) {
	type tcase struct {
		name    string
		session bool
		opts    []reqOpt
		pass    bool // reaches next (with a session) / gets 401 (without)
	}
	cases := []tcase{
		{"foreign Origin", true, []reqOpt{fromOrigin(evilOrigin), fetchSite("cross-site")}, false},
		{"other tenant's framer", true, []reqOpt{fromOrigin(globexOrigin)}, false},
		{"Origin null", true, []reqOpt{fromOrigin("null")}, false},
		{"two Origins", true, []reqOpt{fromOrigin(selfOrigin), fromOrigin(selfOrigin)}, false},
		{"cross-site without Origin", true, []reqOpt{fetchSite("cross-site")}, false},
		{"same-site sibling without Origin", true, []reqOpt{fetchSite("same-site")}, false},
		{"same origin", true, []reqOpt{fromOrigin(selfOrigin), fetchSite("same-origin")}, true},
		{"same origin, explicit port", true, []reqOpt{fromOrigin("https://portal.gate.test:443")}, true},
		{"same-origin fetch metadata", true, []reqOpt{fetchSite("same-origin")}, true},
		{"no browser headers", true, nil, true},
		{"allowlisted Origin", true, []reqOpt{fromOrigin(acmeOrigin), fetchSite("cross-site")}, true},
		{"no session: foreign Origin", false, []reqOpt{fromOrigin(evilOrigin)}, false},
		{"no session: Origin null", false, []reqOpt{fromOrigin("null")}, false},
		{"no session: cross-site", false, []reqOpt{fetchSite("cross-site")}, false},
		{"no session: same origin", false, []reqOpt{fromOrigin(selfOrigin)}, true},
		{"no session: no headers", false, nil, true},
	}
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		for _, tc := range cases {
			t.Run(method+" "+tc.name, func(t *testing.T) {
				e := newEnv(t)
				opts := tc.opts
				if tc.session {
					opts = append(opts, withCookie(e.login()))
				}
				res := e.do(newReq(method, "/deals/7", strings.NewReader("a=1"), opts...))
				switch {
				case !tc.pass:
					wantJSONError(t, res, 403, "forbidden", "cross_origin")
					wantNotCalled(t, res)
					wantNoCookie(t, res)
					if tc.session {
						wantCSP(t, res, acmeCSP)
					}
				case tc.session:
					wantStatus(t, res, 200)
					wantCalled(t, res)
					if res.up.headers.Get("X-Embed-Subject") != subject {
						t.Fatal("identity missing upstream")
					}
				default:
					wantJSONError(t, res, 401, "invalid_session", "session_missing")
					wantNotCalled(t, res)
				}
			})
		}
	}
}

func TestCrossOriginRefusalIsAudited(t *testing.T) {
	e := newEnv(t)
	v := e.login()
	e.resetEvents()
	e.do(newReq("DELETE", "/deals/7", nil, withCookie(v), fromOrigin(evilOrigin)))
	ev := e.onlyEvent()
	if ev.Kind != gateway.EventReject || ev.Reason != reason.CrossOrigin || ev.Tenant != "acme" ||
		ev.Subject != subject || ev.Session != fp(e.open(v).ID) {
		t.Fatalf("event %+v", ev)
	}
}

func TestSafeMethodsSkipOriginCheck(t *testing.T) {
	for _, m := range []string{"GET", "HEAD", "OPTIONS"} {
		t.Run(m, func(t *testing.T) {
			e := newEnv(t)
			res := e.do(newReq(m, "/deals", nil, withCookie(e.login()), fromOrigin(evilOrigin)))
			wantCalled(t, res)
		})
	}
}

func TestSessionOnAnotherTenantsHost(t *testing.T) {
	e := newEnv(t)
	v := e.login()
	// Carried to another host, the cookie does not even open: it is bound
	// to the host that set it (browsers never send a __Host- cookie there).
	res := e.do(newReq("GET", "/deals", nil, withCookie(v), onHost(globexHost), xhr()))
	wantJSONError(t, res, 401, "invalid_session", "session_invalid")
	wantNotCalled(t, res)
	wantCSP(t, res, globexCSP)

	// A session of acme sealed on a host that now belongs to globex (the
	// host was reassigned in the config) opens, and is refused for its tenant.
	now := e.clock.Now().Truncate(time.Second)
	moved, err := e.sealer.Seal(&session.Session{ID: "bW92ZWQtc2Vzc2lvbi1pZA", Tenant: "acme", Subject: "jane@acme.test",
		IssuedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}, globexHost)
	if err != nil {
		t.Fatal(err)
	}
	res = e.do(newReq("GET", "/deals", nil, withCookie(moved), onHost(globexHost), xhr()))
	wantJSONError(t, res, 401, "invalid_session", "wrong_tenant")
	wantNotCalled(t, res)
	info := e.do(newReq("GET", "/.embed/session", nil, withCookie(moved), onHost(globexHost)))
	wantJSONError(t, info, 401, "invalid_session", "wrong_tenant")

	// On its own host it works.
	wantCalled(t, e.do(newReq("GET", "/deals", nil, withCookie(v))))
}

func TestBadCookies(t *testing.T) {
	e := newEnv(t)
	v := e.login()
	foreign, err := session.NewSealer(cookieName, [][]byte{[]byte("another-sealing-secret-0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := foreign.Seal(&session.Session{ID: "x", Tenant: "acme", Subject: "mallory", IssuedAt: t0, LastSeen: t0, ExpiresAt: t0.Add(time.Hour)}, "portal.gate.test")
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"tampered":      tamper(v),
		"truncated":     v[:len(v)-4],
		"garbage":       "abc",
		"foreign key":   forged,
		"quoted tamper": `"` + tamper(v) + `"`,
	} {
		t.Run(name, func(t *testing.T) {
			res := e.do(newReq("GET", "/deals", nil, withCookie(bad), xhr()))
			wantJSONError(t, res, 401, "invalid_session", "session_invalid")
			wantCleared(t, res)
			wantNotCalled(t, res)
			nav := e.do(newReq("GET", "/deals", nil, withCookie(bad), navigate("iframe")))
			wantStatus(t, nav, 401)
			wantCleared(t, nav)
		})
	}
	t.Run("quoted valid cookie", func(t *testing.T) {
		wantCalled(t, e.do(newReq("GET", "/deals", nil, withCookie(`"`+v+`"`))))
	})
}

func TestSessionAbsoluteExpiry(t *testing.T) {
	e := newEnv(t)
	v := e.login()
	e.clock.Advance(sessionTTL + time.Second)
	res := e.do(newReq("GET", "/deals", nil, withCookie(v), xhr()))
	wantJSONError(t, res, 401, "invalid_session", "session_expired")
	wantCleared(t, res)
	wantNotCalled(t, res)
}

// Activity slides the idle window but never the absolute lifetime.
func TestSessionActiveUserStillExpiresAtTTL(t *testing.T) {
	e := newEnv(t)
	v := e.login()
	orig := e.open(v)
	step := 20 * time.Minute
	for elapsed := step; elapsed < sessionTTL; elapsed += step {
		e.clock.Advance(step)
		res := e.do(newReq("GET", "/deals", nil, withCookie(v)))
		wantCalled(t, res)
		nv, age := sessionCookie(t, res)
		if want := int((sessionTTL - elapsed) / time.Second); age != want {
			t.Fatalf("at %v: refreshed Max-Age %d, want %d", elapsed, age, want)
		}
		s := e.open(nv)
		if s.ID != orig.ID || !s.ExpiresAt.Equal(orig.ExpiresAt) || !s.IssuedAt.Equal(orig.IssuedAt) {
			t.Fatalf("refresh changed identity or lifetime: %+v", s)
		}
		if !s.LastSeen.Equal(t0.Add(elapsed)) {
			t.Fatalf("LastSeen %v, want %v", s.LastSeen, t0.Add(elapsed))
		}
		v = nv
	}
	e.clock.Advance(step) // exactly 8h after the exchange
	res := e.do(newReq("GET", "/deals", nil, withCookie(v), xhr()))
	wantJSONError(t, res, 401, "invalid_session", "session_expired")
	wantNotCalled(t, res)
}

func TestSessionIdle(t *testing.T) {
	cases := []struct {
		after time.Duration
		ok    bool
	}{
		{29*time.Minute + 59*time.Second, true},
		{30 * time.Minute, false},
		{31 * time.Minute, false},
	}
	for _, tc := range cases {
		t.Run(tc.after.String(), func(t *testing.T) {
			e := newEnv(t)
			v := e.login()
			e.clock.Advance(tc.after)
			res := e.do(newReq("GET", "/deals", nil, withCookie(v), xhr()))
			if tc.ok {
				wantCalled(t, res)
				return
			}
			wantJSONError(t, res, 401, "invalid_session", "session_idle")
			wantCleared(t, res)
			wantNotCalled(t, res)
		})
	}
}

func TestSlidingRefresh(t *testing.T) {
	t.Run("after 5m no new cookie", func(t *testing.T) {
		e := newEnv(t)
		v := e.login()
		e.clock.Advance(5 * time.Minute)
		res := e.do(newReq("GET", "/deals", nil, withCookie(v)))
		wantCalled(t, res)
		wantNoCookie(t, res)
	})
	t.Run("at exactly half the idle timeout no new cookie", func(t *testing.T) {
		e := newEnv(t)
		v := e.login()
		e.clock.Advance(15 * time.Minute)
		wantNoCookie(t, e.do(newReq("GET", "/deals", nil, withCookie(v))))
	})
	t.Run("after 16m a new cookie that outlives the old one", func(t *testing.T) {
		e := newEnv(t)
		v := e.login()
		e.clock.Advance(16 * time.Minute)
		res := e.do(newReq("GET", "/deals", nil, withCookie(v)))
		wantCalled(t, res)
		nv, age := sessionCookie(t, res)
		if age != int((sessionTTL-16*time.Minute)/time.Second) {
			t.Fatalf("Max-Age %d", age)
		}
		if nv == v {
			t.Fatal("refresh returned the same value")
		}
		if s := e.open(nv); !s.LastSeen.Equal(t0.Add(16 * time.Minute)) {
			t.Fatalf("LastSeen %v", s.LastSeen)
		}
		wantCSP(t, res, acmeCSP)
		// 31m after the exchange: the new cookie is not idle yet.
		e.clock.Advance(15 * time.Minute)
		wantCalled(t, e.do(newReq("GET", "/deals", nil, withCookie(nv))))
	})
	t.Run("an idle copy ends every copy of its session", func(t *testing.T) {
		// A browser holds one cookie (the refresh replaces it), so an old
		// copy sent after the idle timeout was kept somewhere else. The
		// refresh must not move the old copy's idle window (the session
		// opened from it is shared by every request that sends it again,
		// and the refresh changes a copy), and the copy seen idle ends the
		// session id: a copy taken from the user and kept fresh by its
		// holder would otherwise outlive the user's own.
		e := newEnv(t)
		user, refreshed := stealAndKeepFresh(t, e)
		wantJSONError(t, e.do(newReq("GET", "/deals", nil, withCookie(user), xhr())), 401, "invalid_session", "session_idle")
		wantJSONError(t, e.do(newReq("GET", "/deals", nil, withCookie(refreshed), xhr())), 401, "invalid_session", "session_revoked")
	})
	t.Run("refresh on the session endpoint is not required", func(t *testing.T) {
		e := newEnv(t)
		v := e.login()
		e.clock.Advance(16 * time.Minute)
		wantStatus(t, e.do(newReq("GET", "/.embed/session", nil, withCookie(v))), 200)
	})
}

func TestRequire(t *testing.T) {
	expand := func(r *http.Request, s string) string {
		segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		if len(segs) > 1 {
			s = strings.ReplaceAll(s, "{path1}", segs[1])
		}
		return s
	}
	cases := []struct {
		name   string
		rules  []gateway.Requirement
		edit   func(jwt.MapClaims)
		path   string
		expand bool
		pass   bool
	}{
		{"scope string has it", []gateway.Requirement{{Scope: "b"}}, set("scope", "a b"), "/x", false, true},
		{"scope string lacks it", []gateway.Requirement{{Scope: "c"}}, set("scope", "a b"), "/x", false, false},
		{"scope string is not a substring match", []gateway.Requirement{{Scope: "a"}}, set("scope", "ab b"), "/x", false, false},
		// RFC 6749 delimits scopes by the space alone: a non-breaking space
		// or a tab is part of one scope, which grants nothing it does not
		// name whole ("profile\u00a0deals:read" granted deals:read).
		{"scope split on no non-breaking space", []gateway.Requirement{{Scope: "deals:read"}}, set("scope", "profile\u00a0deals:read"), "/x", false, false},
		{"scope split on no tab", []gateway.Requirement{{Scope: "b"}}, set("scope", "a\tb"), "/x", false, false},
		{"scope with double spaces has it", []gateway.Requirement{{Scope: "b"}}, set("scope", "a  b "), "/x", false, true},
		{"scp array has it", []gateway.Requirement{{Scope: "b"}}, set("scp", []string{"a", "b"}), "/x", false, true},
		{"scp array lacks it", []gateway.Requirement{{Scope: "c"}}, set("scp", []string{"a", "b"}), "/x", false, false},
		{"scp string", []gateway.Requirement{{Scope: "b"}}, set("scp", "b"), "/x", false, true},
		{"no scope claim", []gateway.Requirement{{Scope: "b"}}, nil, "/x", false, false},
		{"two scopes both held", []gateway.Requirement{{Scope: "a"}, {Scope: "b"}}, set("scope", "a b"), "/x", false, true},
		{"two scopes, one held", []gateway.Requirement{{Scope: "a"}, {Scope: "z"}}, set("scope", "a b"), "/x", false, false},
		{"claim literal", []gateway.Requirement{{Claim: "role", Value: "admin"}}, set("role", "admin"), "/x", false, true},
		{"claim literal mismatch", []gateway.Requirement{{Claim: "role", Value: "admin"}}, set("role", "dev"), "/x", false, false},
		{"claim absent", []gateway.Requirement{{Claim: "role", Value: "admin"}}, nil, "/x", false, false},
		{"claim expanded from path", []gateway.Requirement{{Claim: "org_id", Value: "{path1}"}}, set("org_id", "o-42"), "/orgs/o-42/deals", true, true},
		{"claim expanded, other org", []gateway.Requirement{{Claim: "org_id", Value: "{path1}"}}, set("org_id", "o-42"), "/orgs/o-43/deals", true, false},
		{"claim expanded, numeric claim", []gateway.Requirement{{Claim: "org_id", Value: "{path1}"}}, set("org_id", 42), "/orgs/42", true, true},
		{"claim expanded, array membership", []gateway.Requirement{{Claim: "org_id", Value: "{path1}"}}, set("org_id", []string{"o-1", "o-42"}), "/orgs/o-42", true, true},
		{"claim not expanded without hook", []gateway.Requirement{{Claim: "org_id", Value: "{path1}"}}, set("org_id", "o-42"), "/orgs/o-42", false, false},
		{"nested claim", []gateway.Requirement{{Claim: "org.id", Value: "7"}}, set("org", map[string]any{"id": 7}), "/x", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := []option{withRequire(tc.rules...)}
			if tc.expand {
				opts = append(opts, func(_ *env, c *gateway.Config) { c.Expand = expand })
			}
			e := newEnv(t, opts...)
			var edits []func(jwt.MapClaims)
			if tc.edit != nil {
				edits = append(edits, tc.edit)
			}
			v := e.login(edits...)
			e.resetEvents()
			res := e.do(newReq("GET", tc.path, nil, withCookie(v)))
			if tc.pass {
				wantStatus(t, res, 200)
				wantCalled(t, res)
				return
			}
			wantJSONError(t, res, 403, "forbidden", "requirement_failed")
			wantNotCalled(t, res)
			wantCSP(t, res, acmeCSP)
			ev := e.onlyEvent()
			if ev.Kind != gateway.EventReject || ev.Reason != reason.RequirementFailed || ev.Subject != subject || ev.Tenant != "acme" {
				t.Fatalf("event %+v", ev)
			}
		})
	}
}

func TestSessionInfo(t *testing.T) {
	e := newEnv(t)
	v := e.login()
	for _, m := range []string{"GET", "HEAD"} {
		res := e.do(newReq(m, "/.embed/session", nil, withCookie(v)))
		wantStatus(t, res, 200)
		wantNotCalled(t, res)
		if res.hdrs().Get("Cache-Control") != "no-store" {
			t.Fatal("session info is cacheable")
		}
		wantCSP(t, res, acmeCSP)
		if m == "HEAD" {
			continue
		}
		var got map[string]any
		if err := json.Unmarshal(res.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"tenant": "acme", "sub": subject, "expires_at": t0.Add(sessionTTL).Format(time.RFC3339)}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("session info %v, want %v", got, want)
		}
		if _, err := time.Parse(time.RFC3339, got["expires_at"].(string)); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("no cookie", func(t *testing.T) {
		res := e.do(newReq("GET", "/.embed/session", nil))
		wantJSONError(t, res, 401, "invalid_session", "session_missing")
		wantNoCookie(t, res)
		wantCSP(t, res, noneCSP)
	})
	t.Run("tampered", func(t *testing.T) {
		res := e.do(newReq("GET", "/.embed/session", nil, withCookie(tamper(v))))
		wantJSONError(t, res, 401, "invalid_session", "session_invalid")
		wantCleared(t, res)
	})
	t.Run("expired", func(t *testing.T) {
		e := newEnv(t)
		v := e.login()
		e.clock.Advance(sessionTTL)
		res := e.do(newReq("GET", "/.embed/session", nil, withCookie(v)))
		wantJSONError(t, res, 401, "invalid_session", "session_expired")
		wantCleared(t, res)
		wantCSP(t, res, acmeCSP)
	})
}

func TestSignout(t *testing.T) {
	t.Run("revokes and clears", func(t *testing.T) {
		e := newEnv(t)
		v := e.login()
		s := e.open(v)
		e.resetEvents()
		res := e.do(newReq("POST", "/.embed/signout", nil, withCookie(v), fromOrigin(selfOrigin)))
		wantStatus(t, res, http.StatusNoContent)
		wantCleared(t, res)
		wantNotCalled(t, res)
		wantCSP(t, res, acmeCSP)
		if res.hdrs().Get("Cache-Control") != "no-store" {
			t.Fatal("Cache-Control")
		}
		ev := e.onlyEvent()
		if want := (gateway.Event{Kind: gateway.EventSignout, Tenant: "acme", Subject: subject, Session: fp(s.ID)}); ev != want {
			t.Fatalf("event %+v, want %+v", ev, want)
		}
		// The old cookie is dead everywhere.
		old := e.do(newReq("GET", "/deals", nil, withCookie(v), xhr()))
		wantJSONError(t, old, 401, "invalid_session", "session_revoked")
		wantNotCalled(t, old)
		wantCleared(t, old)
		wantJSONError(t, e.do(newReq("GET", "/.embed/session", nil, withCookie(v))), 401, "invalid_session", "session_revoked")
		// ...for as long as it could have lived.
		e.clock.Advance(29 * time.Minute)
		wantJSONError(t, e.do(newReq("GET", "/deals", nil, withCookie(v), xhr())), 401, "invalid_session", "session_revoked")
		// Signing out again still answers 204.
		wantStatus(t, e.do(newReq("POST", "/.embed/signout", nil, withCookie(v))), 204)
	})
	t.Run("other sessions stay", func(t *testing.T) {
		e := newEnv(t)
		a, b := e.login(), e.login()
		wantStatus(t, e.do(newReq("POST", "/.embed/signout", nil, withCookie(a))), 204)
		wantCalled(t, e.do(newReq("GET", "/deals", nil, withCookie(b))))
	})
	t.Run("from an allowlisted framer", func(t *testing.T) {
		e := newEnv(t)
		v := e.login()
		wantStatus(t, e.do(newReq("POST", "/.embed/signout", nil, withCookie(v), fromOrigin(acmeOrigin))), 204)
	})
	t.Run("without a session", func(t *testing.T) {
		e := newEnv(t)
		res := e.do(newReq("POST", "/.embed/signout", nil))
		wantStatus(t, res, 204)
		wantCleared(t, res)
		wantCSP(t, res, noneCSP)
	})
	t.Run("with a dead cookie", func(t *testing.T) {
		e := newEnv(t)
		res := e.do(newReq("POST", "/.embed/signout", nil, withCookie("garbage")))
		wantStatus(t, res, 204)
		wantCleared(t, res)
	})
	for _, tc := range []struct {
		name    string
		session bool
		opts    []reqOpt
	}{
		{"cross-site from a foreign origin", true, []reqOpt{fromOrigin(evilOrigin), fetchSite("cross-site")}},
		{"cross-site from a foreign origin, no session", false, []reqOpt{fromOrigin(evilOrigin)}},
		{"cross-site without Origin", true, []reqOpt{fetchSite("cross-site")}},
		{"Origin null", true, []reqOpt{fromOrigin("null")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			opts := tc.opts
			var v string
			if tc.session {
				v = e.login()
				opts = append(opts, withCookie(v))
			}
			res := e.do(newReq("POST", "/.embed/signout", nil, opts...))
			wantJSONError(t, res, 403, "forbidden", "cross_origin")
			wantNoCookie(t, res)
			if tc.session {
				wantCalled(t, e.do(newReq("GET", "/deals", nil, withCookie(v)))) // not revoked
			}
		})
	}
}

// failRevoke is a revocation store that cannot record a revocation.
type failRevoke struct{ *replay.Memory }

func (failRevoke) Revoke(context.Context, string, time.Time) error {
	return errors.New("redis: connection pool timeout")
}

// recordRevoke records the expiry of the last revocation.
type recordRevoke struct {
	*replay.Memory
	until time.Time
}

func (r *recordRevoke) Revoke(ctx context.Context, id string, until time.Time) error {
	r.until = until
	return r.Memory.Revoke(ctx, id, until)
}

// TestSignoutOutlivesSkewedClocks: a sign-out is kept twice the largest
// leeway past the session's expiry, because an instance sharing the store
// whose clock runs up to its leeway behind still takes the session until
// then; kept until the expiry alone, the session worked there again for
// its last moments, and kept this handler's leeway (30s) past it, on an
// instance with a larger one.
func TestSignoutOutlivesSkewedClocks(t *testing.T) {
	var rr *recordRevoke
	e := newEnv(t, func(e *env, c *gateway.Config) { rr = &recordRevoke{Memory: e.mem}; c.Revocations = rr })
	v := e.login()
	s := e.open(v)
	wantStatus(t, e.do(newReq("POST", "/.embed/signout", nil, withCookie(v))), 204)
	if want := s.ExpiresAt.Add(2 * gateway.MaxLeeway); !rr.until.Equal(want) {
		t.Fatalf("revoked until %s, want the expiry %s plus 2·MaxLeeway", rr.until, s.ExpiresAt)
	}
}

func TestSignoutRevocationOutage(t *testing.T) {
	var fr *failRevoke
	e := newEnv(t, func(e *env, c *gateway.Config) { fr = &failRevoke{Memory: e.mem}; c.Revocations = fr })
	v := e.login()
	res := e.do(newReq("POST", "/.embed/signout", nil, withCookie(v)))
	wantJSONError(t, res, 503, "temporarily_unavailable", "store_unavailable")
	if res.hdrs().Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	// A sign-out that did not stick does not pretend: the cookie stays.
	wantNoCookie(t, res)
}

// TestTokenURLNeverPassedOn is a regression test for a token leaking through
// Caddy's error path: a POST to /deals?embed_token=… with a session went to
// the app with the token removed, but Caddy logs a failed request's
// original URL (the upstream down: at ERROR) and runs handle_errors with
// it, so the unspent token reached the error log and, through an error
// route, the app. Only a GET into the app exchanges a token from a URL;
// every other request with one, with or without a session, on any path,
// is answered 400 by the gateway itself, returns no error for Caddy to
// handle, and leaves the token unspent.
func TestTokenURLNeverPassedOn(t *testing.T) {
	cases := []struct{ method, target string }{
		{"POST", "/deals?a=1&embed_token=TOK&b=%20"},
		{"HEAD", "/deals?embed_token=TOK"},
		{"PUT", "/deals?a=1;embed_token=TOK;b=2"},
		{"POST", "/deals?embed%5Ftoken=TOK"},
		{"GET", "/.embed/session?embed_token=TOK"},
		{"GET", "/.embed/start?tenant=acme&embed_token=TOK"},
		{"POST", "/.embed/exchange?embed_token=TOK"},
	}
	for _, tc := range cases {
		for _, withSession := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s %s session=%v", tc.method, tc.target, withSession), func(t *testing.T) {
				e := newEnv(t, func(_ *env, c *gateway.Config) { c.ReturnRefusals = true })
				tok := e.mint("acme")
				var opts []reqOpt
				if withSession {
					opts = append(opts, withCookie(e.login()))
				}
				res := e.do(newReq(tc.method, strings.Replace(tc.target, "TOK", tok, 1), nil, opts...))
				wantNotCalled(t, res) // and e.do fails on an error returned to Caddy
				if tc.method != "HEAD" {
					wantJSONError(t, res, http.StatusBadRequest, "invalid_request", "bad_request")
				} else {
					wantStatus(t, res, http.StatusBadRequest)
				}
				wantCSP(t, res, "frame-ancestors 'none'") // the portal host: no tenant of its own
				if h := res.hdrs(); h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "no-referrer" {
					t.Fatalf("Cache-Control %q, Referrer-Policy %q", h.Get("Cache-Control"), h.Get("Referrer-Policy"))
				}
				wantNoCookie(t, res)
				evs := e.eventsCopy()
				if ev := evs[len(evs)-1]; ev.Kind != gateway.EventReject || ev.Reason != reason.BadRequest || strings.Contains(ev.Detail, tok) {
					t.Fatalf("audit event %+v", ev)
				}
				wantStatus(t, e.do(exchangeReq(tok)), 204) // not consumed
			})
		}
	}
}

// Only the subject must reach the app unchanged (token.CheckSubject): a
// forwarded display claim with a space at its end ("Sales ") still signs
// in, and the app reads it as its HTTP parser does.
func TestForwardedClaimWithEdgeSpacesSignsIn(t *testing.T) {
	e := newEnv(t, withForward(gateway.ForwardClaim{Claim: "dept", Header: "X-Dept"}))
	v := e.login(set("dept", "Sales "))
	res := e.do(newReq("GET", "/deals", nil, withCookie(v)))
	wantStatus(t, res, 200)
	if got := res.up.headers.Get("X-Dept"); strings.TrimSpace(got) != "Sales" {
		t.Fatalf("X-Dept = %q", got)
	}
}
