package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"time"

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

// CheckForwardHeader refuses a forward_claim header the gateway or HTTP
// itself owns: the identity headers, Cookie (the session travels in it),
// Host and Authorization.
func CheckForwardHeader(name string) error {
	hd := http.CanonicalHeaderKey(name)
	if hd == HeaderTenant || hd == HeaderSubject {
		return fmt.Errorf("header %s is reserved", name)
	}
	for _, r := range []string{"Cookie", "Host", "Authorization"} {
		if strings.EqualFold(hd, r) {
			return fmt.Errorf("header %s is reserved", name)
		}
	}
	return nil
}
