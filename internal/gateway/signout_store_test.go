package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/tenant"
)

// unstoredRevoke is a revocation store in an outage as the Redis store
// is in one: a revocation is applied to this instance's own view at once
// (so this instance refuses the session from then on) but not stored
// while down is set, and Revoke says so. stored counts the ones stored.
type unstoredRevoke struct {
	*replay.Memory
	down   atomic.Bool
	stored atomic.Int32
}

func (u *unstoredRevoke) Revoke(ctx context.Context, id string, until time.Time) error {
	if err := u.Memory.Revoke(ctx, id, until); err != nil {
		return err
	}
	if u.down.Load() {
		return errors.New("redis: connection refused")
	}
	u.stored.Add(1)
	return nil
}

// TestSignoutRetryAfterOutageStores is a regression test for a sign-out
// retried after a 503 that answered 204 with nothing stored: the store had
// applied the failed revocation to this instance's view, so the retry
// found no live session, revoked nothing, cleared the cookie and answered
// 204, while a copy of the cookie kept working on every other instance.
// Each retry now writes the revocation again, and 204 comes only once the
// store took it.
func TestSignoutRetryAfterOutageStores(t *testing.T) {
	var st *unstoredRevoke
	e := newEnv(t, func(e *env, c *gateway.Config) { st = &unstoredRevoke{Memory: e.mem}; c.Revocations = st })
	v := e.login()
	st.down.Store(true)
	for range 2 {
		res := e.do(signoutReq("/.embed/signout?tenant=acme", v))
		wantJSONError(t, res, 503, "temporarily_unavailable", "store_unavailable")
		wantNoCookie(t, res)
	}
	// Refused here already: this instance's view has it.
	wantJSONError(t, e.do(newReq("GET", "/deals", nil, xhr(), withCookie(v))), 401, "invalid_session", "session_revoked")
	st.down.Store(false)
	res := e.do(signoutReq("/.embed/signout?tenant=acme", v))
	wantStatus(t, res, http.StatusNoContent)
	wantCleared(t, res)
	if n := st.stored.Load(); n != 1 {
		t.Fatalf("%d revocations stored, want 1", n)
	}
}

// TestSignoutOfCookieExpiredHere: a cookie this instance finds past its
// expiry (its clock runs ahead) or past session_ttl (its config is
// shorter, as during a rolling change) may still be taken by another
// instance sharing the store. Its sign-out ends the id all the same, kept
// as long as any sign-out is, rather than answering 204 with nothing
// revoked.
func TestSignoutOfCookieExpiredHere(t *testing.T) {
	var rr *recordRevoke
	e := newEnv(t, func(e *env, c *gateway.Config) { rr = &recordRevoke{Memory: e.mem}; c.Revocations = rr })
	v := e.login()
	s := e.open(v)
	e.clock.Advance(sessionTTL + gateway.MaxLeeway)
	wantJSONError(t, e.do(newReq("GET", "/deals", nil, xhr(), withCookie(v))), 401, "invalid_session", "session_expired")
	wantStatus(t, e.do(signoutReq("/.embed/signout?tenant=acme", v)), http.StatusNoContent)
	if want := s.ExpiresAt.Add(2 * gateway.MaxLeeway); !rr.until.Equal(want) {
		t.Fatalf("revoked until %s, want %s", rr.until, want)
	}
}

// TestSignoutOfTenantUnknownHere: a cookie of a tenant this instance no
// longer has (a rolling config change removing it, while other instances
// still have it) is signed out all the same, not answered 204 with nothing
// revoked.
func TestSignoutOfTenantUnknownHere(t *testing.T) {
	var rr *recordRevoke
	var current atomic.Pointer[tenant.Registry]
	e := newEnv(t, func(e *env, c *gateway.Config) {
		rr = &recordRevoke{Memory: e.mem}
		c.Revocations = rr
		current.Store(e.reg)
		c.Tenants = current.Load
	})
	v := e.login()
	s := e.open(v)
	var rest []tenant.Config
	for _, tc := range tenantConfigs() {
		if tc.ID != "acme" {
			rest = append(rest, tc)
		}
	}
	reg, err := tenant.NewRegistry(rest)
	if err != nil {
		t.Fatal(err)
	}
	current.Store(reg)
	wantJSONError(t, e.do(newReq("GET", "/deals", nil, xhr(), withCookie(v))), 401, "invalid_session", "unknown_tenant")
	wantStatus(t, e.do(newReq("POST", "/.embed/signout", nil, withCookie(v), fromOrigin(selfOrigin))), http.StatusNoContent)
	if want := s.ExpiresAt.Add(2 * gateway.MaxLeeway); !rr.until.Equal(want) {
		t.Fatalf("revoked until %s, want %s", rr.until, want)
	}
}
