package gateway

import (
	"net/http"

	"github.com/embedgate/embedgate/internal/tenant"
)

// serveTokenAPI is POST {prefix}/token, the server-to-server token API.
func (g *Gateway) serveTokenAPI(w http.ResponseWriter, r *http.Request, hostTenant *tenant.Tenant) {
	setFraming(w.Header(), hostTenant)
	writeJSON(w, http.StatusNotFound, errorBody{Error: "not_found"})
}
