package gateway_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/reason"
)

// With ReturnRefusals, the 401 and 403 answers to requests into the app are
// handed to the caller (Caddy's handle_errors) with their status and typed
// reason, headers already set; the gate page, the login redirect and token
// failures are still written, since the host page depends on them.
func TestReturnRefusals(t *testing.T) {
	e := newEnv(t, withRequire(gateway.Requirement{Scope: "deals:read"}), func(_ *env, c *gateway.Config) { c.ReturnRefusals = true })
	serve := func(r *http.Request) (*httptest.ResponseRecorder, error) {
		w := httptest.NewRecorder()
		return w, e.gw.ServeHTTP(w, r, (&upstream{}).next)
	}
	wantRefusal := func(name string, r *http.Request, status int, why reason.Reason) {
		t.Helper()
		w, err := serve(r)
		var ref *gateway.RefusalError
		if !errors.As(err, &ref) || ref.Status != status || ref.Reason != why {
			t.Fatalf("%s: %v, want a %d %s refusal", name, err, status, why)
		}
		if w.Body.Len() != 0 || w.Header().Get("Content-Security-Policy") == "" {
			t.Fatalf("%s: body %q, CSP %q: want no body and the framing header set", name, w.Body, w.Header().Get("Content-Security-Policy"))
		}
	}
	wantRefusal("fetch without a session", newReq("GET", "/deals", nil, xhr()), 401, reason.SessionMissing)
	wantRefusal("cross-origin POST", newReq("POST", "/deals", nil, fromOrigin(evilOrigin)), 403, reason.CrossOrigin)
	v := e.login()
	wantRefusal("failed require rule", newReq("GET", "/deals", nil, withCookie(v), xhr()), 403, reason.RequirementFailed)

	for name, r := range map[string]*http.Request{
		"gate page":     newReq("GET", "/deals", nil, navigate("iframe")),
		"token failure": newReq("GET", "/deals?embed_token=garbage", nil, xhr()),
		"exchange":      exchangeReq("garbage"),
	} {
		w, err := serve(r)
		if err != nil || w.Code < 400 || w.Body.Len() == 0 {
			t.Fatalf("%s: err %v, status %d, body %d bytes: want it written as before", name, err, w.Code, w.Body.Len())
		}
	}
}
