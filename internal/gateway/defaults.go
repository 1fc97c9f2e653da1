package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/embedgate/embedgate/internal/policy"
	"github.com/embedgate/embedgate/internal/token"
)

// Defaults of Config, applied by the adapter from here; documented on its
// JSON fields.
const (
	DefaultSessionTTL  = 8 * time.Hour
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxTokenAge = token.DefaultMaxTokenAge
	DefaultLeeway      = 30 * time.Second
	DefaultCookieName  = "__Host-embed_session"
	DefaultPrefix      = "/.embed"
	DefaultTokenParam  = "embed_token"
)

// MaxSessionTTL is the longest session lifetime, and how long an admin
// revocation lasts: fixed, so that a cutoff stored by one instance outlives
// the sessions of every instance sharing the store.
const MaxSessionTTL = 30 * 24 * time.Hour

// reservedForwardHeaders are headers a forward_claim may not set: the
// session travels in Cookie; Host and Authorization mean something to every
// server; the hop-by-hop ones would be dropped by the proxy (or change how
// the request is framed); the method overrides never reach the app.
var reservedForwardHeaders = []string{
	"Cookie", "Host", "Authorization", "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Content-Length", "Expect", "Proxy-Authorization",
}

// CheckForwardHeader refuses a forward_claim header the gateway or HTTP
// itself owns.
func CheckForwardHeader(name string) error {
	hd := http.CanonicalHeaderKey(name)
	if hd == HeaderTenant || hd == HeaderSubject || policy.IsAlwaysRemoved(hd) {
		return fmt.Errorf("header %s is reserved", name)
	}
	for _, r := range reservedForwardHeaders {
		if strings.EqualFold(hd, r) {
			return fmt.Errorf("header %s is reserved", name)
		}
	}
	return nil
}
