package gateway_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/replay"
)

// stealAndKeepFresh logs a user in, then plays the holder of a copy of the
// cookie (malware, a shared machine, a proxy log) who keeps it fresh: past
// half the idle timeout the gateway re-seals that copy with a new LastSeen
// under the same session id. 35 minutes on, the user's own copy is idle
// (idle is 30m) and the holder's is not. It returns both.
func stealAndKeepFresh(t *testing.T, e *env) (user, stolen string) {
	t.Helper()
	user = e.login()
	e.clock.Advance(20 * time.Minute)
	res := e.do(newReq("GET", "/deals", nil, xhr(), withCookie(user)))
	wantCalled(t, res)
	stolen, _ = sessionCookie(t, res)
	if e.open(stolen).ID != e.open(user).ID {
		t.Fatal("the refresh changed the session id")
	}
	e.clock.Advance(15 * time.Minute)
	return user, stolen
}

func signoutReq(target, cookie string) *http.Request {
	return newReq("POST", target, nil, fromOrigin(selfOrigin), fetchSite("same-origin"), withCookie(cookie))
}

// TestSignoutEndsAStolenFreshCopy is a regression test for a sign-out that
// left a stolen session alive: idle time lives in each copy of the cookie,
// revocation is by session id, and a sign-out sent with the user's idle
// copy revoked nothing, yet cleared the cookie and answered 204, so the
// page told the host "signed_out" while the copy its holder kept fresh
// reached the app as the user until session_ttl. The sign-out now ends the
// id of an authentic idle cookie too.
func TestSignoutEndsAStolenFreshCopy(t *testing.T) {
	e := newEnv(t)
	user, stolen := stealAndKeepFresh(t, e)
	res := e.do(signoutReq("/.embed/signout?tenant=acme", user))
	wantStatus(t, res, http.StatusNoContent)
	wantCleared(t, res)
	wantJSONError(t, e.do(newReq("GET", "/deals", nil, xhr(), withCookie(stolen))), 401, "invalid_session", "session_revoked")
	var signouts int
	for _, ev := range e.eventsCopy() {
		if ev.Kind == gateway.EventSignout && ev.Subject != "" {
			signouts++
		}
	}
	if signouts != 1 {
		t.Fatalf("%d signout events, want 1", signouts)
	}
}

// TestIdleCopyEndsItsSession: whichever path first sees a copy of the
// cookie idle (the app, the session endpoint, the bridge script), the
// session id ends there, so the copy kept fresh elsewhere stops too, and
// the user who comes back, gets the gate page and signs in again leaves no
// old session behind.
func TestIdleCopyEndsItsSession(t *testing.T) {
	for _, target := range []string{"/deals", "/.embed/session", "/.embed/bridge.js"} {
		t.Run(target, func(t *testing.T) {
			e := newEnv(t)
			user, stolen := stealAndKeepFresh(t, e)
			e.do(newReq("GET", target, nil, xhr(), withCookie(user)))
			wantJSONError(t, e.do(newReq("GET", "/deals", nil, xhr(), withCookie(stolen))), 401, "invalid_session", "session_revoked")
		})
	}
}

// countRevoke counts the revocations asked of the store.
type countRevoke struct {
	*replay.Memory
	n atomic.Int32
}

func (c *countRevoke) Revoke(ctx context.Context, id string, until time.Time) error {
	c.n.Add(1)
	return c.Memory.Revoke(ctx, id, until)
}

// TestIdleCopyRevokedOnce: an idle cookie sent again and again (a replayed
// request, or a page's requests still in flight) writes its revocation to
// the store once, not once a request, and every answer says session_idle:
// the id is revoked now, but the user did not sign out.
func TestIdleCopyRevokedOnce(t *testing.T) {
	var cr *countRevoke
	e := newEnv(t, func(e *env, c *gateway.Config) { cr = &countRevoke{Memory: e.mem}; c.Revocations = cr })
	user, _ := stealAndKeepFresh(t, e)
	for range 5 {
		res := e.do(newReq("GET", "/deals", nil, xhr(), withCookie(user)))
		wantJSONError(t, res, 401, "invalid_session", "session_idle")
		wantNotCalled(t, res)
	}
	if n := cr.n.Load(); n != 1 {
		t.Fatalf("%d revocations, want 1", n)
	}
	// A live session, or one past its session_ttl (over for every copy
	// alike), writes nothing.
	e2 := newEnv(t, func(e *env, c *gateway.Config) { cr = &countRevoke{Memory: e.mem}; c.Revocations = cr })
	v := e2.login()
	wantCalled(t, e2.do(newReq("GET", "/deals", nil, xhr(), withCookie(v))))
	e2.clock.Advance(sessionTTL)
	wantNotCalled(t, e2.do(newReq("GET", "/deals", nil, xhr(), withCookie(v))))
	if n := cr.n.Load(); n != 0 {
		t.Fatalf("%d revocations, want 0", n)
	}
}

// TestSignoutOfIdleCopyStoreOutage: a sign-out whose revocation did not
// stick does not pretend, for an idle cookie as for a live one.
func TestSignoutOfIdleCopyStoreOutage(t *testing.T) {
	e := newEnv(t, func(e *env, c *gateway.Config) { c.Revocations = failRevoke{Memory: e.mem} })
	user, _ := stealAndKeepFresh(t, e)
	res := e.do(signoutReq("/.embed/signout?tenant=acme", user))
	wantJSONError(t, res, 503, "temporarily_unavailable", "store_unavailable")
	wantNoCookie(t, res)
}

// TestSignoutOfIdleCopyOtherTenant: another tenant's sign-out page (on a
// shared host) neither ends nor clears an idle acme session, as it does
// not end a live one.
func TestSignoutOfIdleCopyOtherTenant(t *testing.T) {
	e := newEnv(t)
	user, stolen := stealAndKeepFresh(t, e)
	res := e.do(signoutReq("/.embed/signout?tenant=globex", user))
	wantStatus(t, res, http.StatusNoContent)
	wantNoCookie(t, res)
	wantCalled(t, e.do(newReq("GET", "/deals", nil, xhr(), withCookie(stolen))))
}
