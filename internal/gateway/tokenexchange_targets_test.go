package gateway_test

import (
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestTokenExchangeTargets: the tenant's id, and URLs on hosts where the
// token is good (the tenant's own, or a host of no tenant: the caller may
// name the public URL while calling an internal one), are targets the
// token is for, as audience or resource.
func TestTokenExchangeTargets(t *testing.T) {
	for _, f := range []url.Values{
		{"audience": {"acme", ""}, "resource": {"https://portal.gate.test/deals", "http://PORTAL.gate.test:8443/"}},
		{"audience": {"https://portal.gate.test", "https://portal.gate.test/.embed/token"}},
		{"resource": {"https://app.public.example/"}},
	} {
		e := newTxEnv(t)
		w := e.post(txKey, "", exchangeForm(accessToken(t), func(form url.Values) { maps.Copy(form, f) }))
		if w.Code != http.StatusOK {
			t.Fatalf("%v: %d %s", f, w.Code, w.Body)
		}
	}
	// A globex token on globex's own host.
	e := newTxEnv(t)
	w := e.post(txGlobexKey, "globex.gate.test", exchangeForm(accessToken(t), func(form url.Values) { form.Set("resource", "https://globex.gate.test/") }))
	if w.Code == http.StatusBadRequest && strings.Contains(w.Body.String(), "invalid_target") {
		t.Fatalf("globex's own host refused as a target: %s", w.Body)
	}
}
