package gateway

import (
	"net/http"

	"github.com/embedgate/embedgate/internal/tenant"
)

// servePage serves the browser kit under the prefix (start page, SDK,
// bridge). It reports whether it handled the request.
func (g *Gateway) servePage(w http.ResponseWriter, r *http.Request, hostTenant *tenant.Tenant) bool {
	return false
}
