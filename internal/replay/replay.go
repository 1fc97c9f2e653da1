// Package replay keeps the state that makes tokens single-use and sign-outs
// stick: used token ids (jti) and revoked sessions. Each concern is one small
// interface with an in-memory implementation here; a shared (Redis)
// implementation satisfies the same interfaces for clusters.
package replay

import (
	"context"
	"time"
)

// Store records used token ids.
type Store interface {
	// Claim marks the jti of tenant as used for ttl. It returns nil when the
	// jti was unused, an error with reason.Replayed when it was already used,
	// and an error with reason.StoreUnavailable when the store cannot answer:
	// callers fail closed. ttl is always positive. The key is the pair
	// (tenant, jti), never the token's bytes or a hash of them: one token
	// has more than one encoding that verifies (an ECDSA signature's s and
	// n-s), and every encoding must meet the same entry.
	Claim(ctx context.Context, tenant, jti string, ttl time.Duration) error
}

// SessionRef identifies a session for revocation checks.
type SessionRef struct {
	ID       string
	Tenant   string
	Subject  string
	IssuedAt time.Time
}

// Revocations records revoked sessions. Revoked is on the per-request path:
// it is a local lookup and never does I/O. Revoke and RevokeAll finish a
// write that has begun even when ctx is cancelled (they keep its values
// and bound the write by the store's own timeout): a sign-out whose client
// went away at once, as a page that navigates on sign-out does, must still
// reach every instance.
type Revocations interface {
	// Revoke revokes one session id until its expiry.
	Revoke(ctx context.Context, sessionID string, until time.Time) error
	// RevokeAll revokes every session of tenant (of subject only, when
	// subject is not empty) issued at or before the call, until every such
	// session has expired (until).
	RevokeAll(ctx context.Context, tenant, subject string, until time.Time) error
	// Revoked reports whether the session has been revoked.
	Revoked(s SessionRef) bool
}
