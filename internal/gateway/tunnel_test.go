package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/tenant"
)

// tunnelEnv is an env whose registry a test can swap (a reload), whose
// registry reads are counted (each check of an open tunnel makes one), and
// whose tunnels are checked every millisecond.
type tunnelEnv struct {
	*env
	reg   atomic.Pointer[tenant.Registry]
	reads atomic.Int64
}

func newTunnelEnv(t *testing.T) *tunnelEnv {
	te := &tunnelEnv{}
	te.env = newEnv(t, func(e *env, c *gateway.Config) {
		te.reg.Store(e.reg)
		c.Tenants = func() *tenant.Registry { te.reads.Add(1); return te.reg.Load() }
	})
	gateway.SetTunnelCheck(te.gw, time.Millisecond)
	return te
}

// openTunnel sends a WebSocket handshake with cookie to an app that holds
// the tunnel open until the request's context ends, as Caddy's proxy does,
// and returns once the app has it. The channel gets why the context ended.
func (te *tunnelEnv) openTunnel(t *testing.T, cookie string) <-chan error {
	t.Helper()
	opened, ended := make(chan struct{}), make(chan error, 1)
	up := &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusSwitchingProtocols)
		close(opened)
		select {
		case <-r.Context().Done():
			ended <- context.Cause(r.Context())
		case <-time.After(10 * time.Second):
			ended <- errors.New("the tunnel was never closed")
		}
	}}
	go te.doWith(newReq("GET", "/socket", nil, withCookie(cookie), hdr("Upgrade", "websocket"),
		hdr("Connection", "Upgrade"), fromOrigin(acmeOrigin)), up)
	select {
	case <-opened:
	case <-time.After(10 * time.Second):
		t.Fatal("the handshake never reached the app")
	}
	return ended
}

// checks waits until the open tunnels' sessions have been checked n more
// times (counted in registry reads, one a check and tunnel).
func (te *tunnelEnv) checks(t *testing.T, n int64) {
	t.Helper()
	want := te.reads.Load() + n
	deadline := time.Now().Add(10 * time.Second)
	for te.reads.Load() < want {
		if time.Now().After(deadline) {
			t.Fatal("the tunnel's session is not being checked")
		}
		time.Sleep(time.Millisecond)
	}
}

func wantTunnelEnded(t *testing.T, ended <-chan error, why reason.Reason) {
	t.Helper()
	if err := <-ended; reason.Of(err) != why {
		t.Fatalf("the tunnel ended with %v, want %s", err, why)
	}
}

// TestTunnelEndsWithItsSession is a regression test for a WebSocket that
// outlived its session: the handshake checks the session once, then the
// proxy carries bytes no check sees, so a socket opened before a sign-out
// (or an admin revocation, or the session's expiry, or the tenant's
// removal) kept the user's access open for as long as it stayed up. The
// gateway now checks an open tunnel's session again every second and ends
// the tunnel when it no longer holds.
func TestTunnelEndsWithItsSession(t *testing.T) {
	t.Run("sign-out", func(t *testing.T) {
		te := newTunnelEnv(t)
		v := te.login()
		ended := te.openTunnel(t, v)
		wantStatus(t, te.do(signoutReq("/.embed/signout", v)), http.StatusNoContent)
		wantTunnelEnded(t, ended, reason.SessionRevoked)
	})
	t.Run("expiry", func(t *testing.T) {
		te := newTunnelEnv(t)
		ended := te.openTunnel(t, te.login())
		te.clock.Advance(sessionTTL)
		wantTunnelEnded(t, ended, reason.SessionExpired)
	})
	t.Run("tenant removed", func(t *testing.T) {
		te := newTunnelEnv(t)
		ended := te.openTunnel(t, te.login())
		reg, err := tenant.NewRegistry(tenantConfigs()[1:])
		if err != nil {
			t.Fatal(err)
		}
		te.reg.Store(reg)
		wantTunnelEnded(t, ended, reason.UnknownTenant)
	})
	t.Run("a live session keeps it, idle or not", func(t *testing.T) {
		te := newTunnelEnv(t)
		v := te.login()
		ended := te.openTunnel(t, v)
		te.checks(t, 3)
		te.clock.Advance(idle + time.Minute) // the tunnel is the activity
		te.checks(t, 3)
		select {
		case err := <-ended:
			t.Fatalf("a live session's tunnel ended: %v", err)
		default:
		}
		// Another user's sign-out leaves it open too.
		wantStatus(t, te.do(signoutReq("/.embed/signout", te.login())), http.StatusNoContent)
		te.checks(t, 3)
		select {
		case err := <-ended:
			t.Fatalf("another session's sign-out ended the tunnel: %v", err)
		default:
		}
		wantStatus(t, te.do(signoutReq("/.embed/signout", v)), http.StatusNoContent)
		wantTunnelEnded(t, ended, reason.SessionRevoked)
	})
}
