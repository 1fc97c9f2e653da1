package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/tenant"
)

// tunnelCheck is how often an open tunnel's session is checked again.
const tunnelCheck = time.Second

// serveTunnel passes on a request that opens a tunnel (a WebSocket). After
// the handshake the proxy carries bytes that no request check sees, for as
// long as the tunnel stays open, so the session it was opened with is
// checked again every tunnelCheck: once it is revoked (a sign-out, an
// admin revocation, an idle copy), past its expiry or session_ttl, or its
// tenant is gone, the request's context ends, and Caddy's proxy closes
// both ends of a tunnel whose request context ends. Idle time does not
// end a tunnel: the tunnel is the activity.
func (g *Gateway) serveTunnel(fw *framingWriter, r *http.Request, next Next, t *tenant.Tenant, s *session.Session) error {
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	r = r.WithContext(ctx)
	go g.watchTunnel(ctx, cancel, r, t, s)
	err := g.serveUpstream(fw, r, next)
	fw.finish()
	return err
}

// watchTunnel ends the tunnel's context once its session no longer holds,
// and returns when the context ends, whoever ended it.
func (g *Gateway) watchTunnel(ctx context.Context, cancel context.CancelCauseFunc, r *http.Request, t *tenant.Tenant, s *session.Session) {
	tick := time.NewTicker(g.tunnelCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := g.tunnelEnds(s); err != nil {
				g.audit(r, t, s, err, false)
				cancel(err)
				return
			}
		}
	}
}

// tunnelEnds is why session s may no longer hold a tunnel open, nil while
// it may: every check a request meets but the idle time.
func (g *Gateway) tunnelEnds(s *session.Session) error {
	if err := g.sessionHolds(s, g.now(), 0); err != nil {
		return err
	}
	if _, ok := g.cfg.Tenants().ByID(s.Tenant); !ok {
		return reason.Errorf(reason.UnknownTenant, "tenant %q is no longer configured", s.Tenant)
	}
	return nil
}
