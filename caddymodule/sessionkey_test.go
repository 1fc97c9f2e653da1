package caddymodule

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/embedgate/embedgate/internal/session"
)

// Provisioning (which `embedgate validate` runs too) writes nothing: the
// generated session key is created in storage on first use, and a second
// instance on the same storage then opens the first one's cookies.
func TestSessionKeyCreatedOnFirstUse(t *testing.T) {
	st := &certmagic.FileStorage{Path: t.TempDir()}
	a := &lazySealer{storage: st, cookieName: "__Host-s"}
	if _, err := loadSessionKey(context.Background(), st); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a key exists before first use: %v", err)
	}
	now := time.Now().Truncate(time.Second)
	v, err := a.Seal(&session.Session{ID: "0123456789abcdef", Tenant: "acme", Subject: "jane", IssuedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}, "portal.test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadSessionKey(context.Background(), st); err != nil {
		t.Fatalf("first use did not store the key: %v", err)
	}
	b := &lazySealer{storage: st, cookieName: "__Host-s"}
	s, err := b.Open(v, "portal.test")
	if err != nil || s.Subject != "jane" {
		t.Fatalf("second instance: %v %v", s, err)
	}
}
