package caddymodule

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"

	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/session"
)

// storageKey is where a generated session key is kept in Caddy's storage, so
// restarts and instances sharing that storage keep sessions valid.
const storageKey = "embedgate/session_key"

// provisionSealer builds the session key ring from config, or from the key
// kept in Caddy's storage. Provision only reads storage: `embedgate
// validate` provisions too and must write nothing, so a key that does not
// exist yet is generated (under the storage lock) when the first request
// needs it.
func (h *Handler) provisionSealer(ctx caddy.Context, repl *caddy.Replacer) (gateway.Sealer, error) {
	var secrets [][]byte
	for i, k := range h.SessionKeys {
		s, err := resolveSecret(repl, k)
		if err != nil {
			return nil, fmt.Errorf("session_key #%d: %w", i+1, err)
		}
		if len(s) < 32 {
			return nil, fmt.Errorf("session_key #%d: %d bytes, at least 32 required", i+1, len(s))
		}
		secrets = append(secrets, []byte(s))
	}
	if len(secrets) > 0 {
		return session.NewSealer(h.CookieName, secrets)
	}
	st := ctx.Storage()
	key, err := loadSessionKey(ctx, st)
	switch {
	case err == nil:
		return session.NewSealer(h.CookieName, [][]byte{key})
	case errors.Is(err, fs.ErrNotExist):
		return newLazySealer(st, h.CookieName), nil
	default:
		return nil, fmt.Errorf("session_key: none configured and the stored one cannot be read: %w", err)
	}
}

// lazySealer creates the stored session key on first use.
type lazySealer struct{ lazyStored[session.Sealer] }

func newLazySealer(st certmagic.Storage, cookieName string) *lazySealer {
	return &lazySealer{lazyStored[session.Sealer]{name: "session key " + storageKey, make: func(ctx context.Context) (*session.Sealer, error) {
		key, err := storedSessionKey(ctx, st)
		if err != nil {
			return nil, err
		}
		return session.NewSealer(cookieName, [][]byte{key})
	}}}
}

func (l *lazySealer) Seal(sess *session.Session, host string) (string, error) {
	s, err := l.get()
	if err != nil {
		return "", err
	}
	return s.Seal(sess, host)
}

func (l *lazySealer) OpenClaims(value, host string) (*session.Session, map[string]any, error) {
	s, err := l.get()
	if err != nil {
		return nil, nil, err
	}
	return s.OpenClaims(value, host)
}

// loadSessionKey reads the stored key without writing anything.
func loadSessionKey(ctx context.Context, st certmagic.Storage) ([]byte, error) {
	data, err := st.Load(ctx, storageKey)
	if err != nil {
		return nil, err
	}
	key, derr := base64.RawURLEncoding.DecodeString(strings.TrimSpace(string(data)))
	if derr != nil || len(key) < 32 {
		return nil, fmt.Errorf("stored key %s is corrupt; delete it to generate a new one", storageKey)
	}
	return key, nil
}

// storedSessionKey loads the session key from storage, creating it under
// the storage lock so concurrent instances agree.
func storedSessionKey(ctx context.Context, st certmagic.Storage) ([]byte, error) {
	return loadOrCreate(ctx, st, storageKey, loadSessionKey, func() ([]byte, []byte, error) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, nil, err
		}
		return key, []byte(base64.RawURLEncoding.EncodeToString(key)), nil
	})
}

// Interface guards
var _ gateway.Sealer = (*lazySealer)(nil)
