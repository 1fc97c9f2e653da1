package gateway

import "time"

// SetTunnelCheck shortens how often g checks an open tunnel's session.
func SetTunnelCheck(g *Gateway, d time.Duration) { g.tunnelCheck = d }
