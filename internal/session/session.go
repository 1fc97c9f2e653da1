// Package session seals and opens the gateway's session cookie: an opaque,
// AES-256-GCM sealed value bound to the cookie name and the tenant, opened on
// every request. Opening is a base64 decode, one AEAD open and a compact
// binary decode: no JSON, no network.
package session

import (
	"errors"
	"fmt"
	"time"

	"github.com/embedgate/embedgate/internal/reason"
)

// MaxCookieValue is the largest cookie value, in bytes, that Seal produces and
// Open accepts. It leaves room for the cookie name and attributes under the
// 4096-byte per-cookie limit that browsers enforce.
const MaxCookieValue = 3800

// MaxTenantLen is the longest tenant id: the envelope stores its length in
// one byte.
const MaxTenantLen = 255

// Session is the state carried by the sealed cookie. Open returns string
// fields that share one backing allocation, and Claims aliases the decoded
// cookie; treat a Session as read-only and copy what must outlive it.
type Session struct {
	ID        string    // >= 128 random bits, base64url (raw); new for every exchange
	Tenant    string    // tenant id, 1..255 bytes
	Subject   string    // the user, as the tenant's token named it
	Origin    string    // parent page origin bound at exchange ("" when unknown)
	Origins   []string  // narrowed frame-ancestors allowlist for this session; nil = the tenant's own
	Claims    []byte    // compact JSON object of forwarded claims (path -> value), or nil; opaque bytes here
	IssuedAt  time.Time // second precision
	LastSeen  time.Time // second precision; the sliding idle window starts here
	ExpiresAt time.Time // absolute expiry, second precision
}

// Check applies the absolute and the idle expiry at now. It returns a
// *reason.Error with reason.SessionExpired when now >= ExpiresAt, and with
// reason.SessionIdle when now >= LastSeen+idle. idle <= 0 disables the idle
// check. The absolute expiry is checked first: it cannot be extended.
func (s *Session) Check(now time.Time, idle time.Duration) error {
	if !now.Before(s.ExpiresAt) {
		return reason.Errorf(reason.SessionExpired, "expired at %s", s.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if idle > 0 && !now.Before(s.LastSeen.Add(idle)) {
		return reason.Errorf(reason.SessionIdle, "idle since %s (timeout %s)", s.LastSeen.UTC().Format(time.RFC3339), idle)
	}
	return nil
}

// NeedsRefresh reports whether more than half of idle has passed since
// LastSeen, so the caller re-seals with a new LastSeen. Refreshing at half
// time, not on every request, keeps Set-Cookie off most responses while an
// active user never reaches the idle timeout. idle <= 0 never refreshes.
func (s *Session) NeedsRefresh(now time.Time, idle time.Duration) bool {
	return idle > 0 && now.Sub(s.LastSeen) > idle/2
}

// validate holds the invariants that Seal enforces and Open re-checks, so
// that every Session that opens can be sealed again.
func (s *Session) validate() error {
	switch {
	case s.ID == "":
		return errors.New("session: empty session id")
	case s.Tenant == "":
		return errors.New("session: empty tenant")
	case len(s.Tenant) > MaxTenantLen:
		return fmt.Errorf("session: tenant id is %d bytes, limit %d", len(s.Tenant), MaxTenantLen)
	case s.ExpiresAt.IsZero():
		// A session without an absolute expiry would live forever.
		return errors.New("session: no expiry")
	}
	return nil
}
