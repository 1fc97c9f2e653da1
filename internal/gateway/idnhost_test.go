package gateway_test

import (
	"testing"

	"golang.org/x/net/idna"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/tenant"
)

// TestIDNHostKeepsHostBinding stops another tenant's tokens on the host of
// a tenant whose hosts entry is written in Unicode, as Caddy accepts it in a
// site address (matching the punycode Host that browsers send). Stored as
// written, the entry matched no request, the tenant lost its host binding,
// and an acme token made a session on globex's host. It must be refused as
// on any tenant's host (TestExchangeTenantParameterAndHosts, "acme token on
// globex's host").
func TestIDNHostKeepsHostBinding(t *testing.T) {
	const unicodeHost = "glöbex.gate.test"
	wire, err := idna.ToASCII(unicodeHost)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(_ *env, c *gateway.Config) {
		cfgs := tenantConfigs()
		cfgs[1].Hosts = []string{unicodeHost} // globex
		reg, err := tenant.NewRegistry(cfgs)
		if err != nil {
			t.Fatal(err)
		}
		c.Tenants = func() *tenant.Registry { return reg }
	})
	res := e.do(exchangeReq(e.mint("acme"), onHost(wire)))
	if res.Code == 204 {
		t.Fatalf("an acme token was exchanged for a session on globex's host %s (%s): the host binding is lost", unicodeHost, wire)
	}
	wantJSONError(t, res, 401, "invalid_token", "wrong_issuer")
}
