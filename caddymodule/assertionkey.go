package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"

	"github.com/embedgate/embedgate/internal/assertion"
	"github.com/embedgate/embedgate/internal/gateway"
	"github.com/embedgate/embedgate/internal/trustfile"
)

// assertionStorageKey is where a generated assertion key is kept in Caddy's
// storage, PKCS#8 PEM, so restarts and every instance sharing that storage
// sign with, and publish, the same single key.
const assertionStorageKey = "embedgate/assertion_key"

// AssertionConfig turns on signed identity for the app: every request that
// goes upstream with a session also carries a short-lived JWT that the app
// verifies against {prefix}/jwks.json.
type AssertionConfig struct {
	// Header is the request header the assertion is sent in; it replaces
	// the default, which is then not sent. Inbound copies are stripped.
	// Default: X-Embed-Assertion.
	Header string `json:"header,omitempty"`
	// Audience is the token's aud. Default: the origin the request was
	// served at (https://<host>[:<listener port>]), the same as its iss.
	Audience string `json:"audience,omitempty"`
	// TTL is an assertion's lifetime, never past the session's expiry; one
	// is signed at most once per session per TTL/2. At least 2s, at most
	// 1h. Default: 5m.
	TTL caddy.Duration `json:"ttl,omitempty"`
	// Keys sign assertions: the first signs, all are published, so a new
	// key goes first to rotate. Default: one P-256 key generated once, on
	// first use, at embedgate/assertion_key in Caddy's storage.
	Keys []AssertionKey `json:"keys,omitempty"`
}

// AssertionKey is one signing key file.
type AssertionKey struct {
	// File is a PEM private key: PKCS#8 (PRIVATE KEY) or SEC1 (EC PRIVATE
	// KEY), P-256 (ES256) or Ed25519 (EdDSA). {env.*} accepted. Required.
	File string `json:"file"`
	// KID is the key id in the token header and the JWKS. Default: the
	// key's RFC 7638 JWK thumbprint.
	KID string `json:"kid,omitempty"`
}

// validateAssertion checks the assertion config without reading anything.
func (h *Handler) validateAssertion() error {
	a := h.Assertion
	if a == nil {
		return nil
	}
	// Its header, and against the forward_claim headers: checkUpstreamHeaders.
	for _, fc := range h.ForwardClaims {
		if err := assertion.CheckClaimPath(fc.Claim); err != nil {
			return err
		}
	}
	if a.TTL != 0 {
		if err := assertion.CheckTTL(time.Duration(a.TTL)); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for i, k := range a.Keys {
		if k.File == "" {
			return fmt.Errorf("assertion: key #%d: file is required", i+1)
		}
		if k.KID != "" && seen[k.KID] {
			return fmt.Errorf("assertion: key #%d: kid %q given twice", i+1, k.KID)
		}
		seen[k.KID] = true
	}
	return nil
}

// checkUpstreamHeaders applies gateway.CheckUpstreamHeaders to the
// forward_claim headers and the assertion's header.
func (h *Handler) checkUpstreamHeaders() error {
	assertion := ""
	if h.Assertion != nil {
		assertion = h.Assertion.header()
	}
	return gateway.CheckUpstreamHeaders(h.gatewayForwardClaims(), assertion)
}

func (a *AssertionConfig) header() string {
	if a.Header == "" {
		return assertion.DefaultHeader
	}
	return http.CanonicalHeaderKey(a.Header)
}

// provisionAssertion builds the issuer, or nil when assertion is off. Like
// provisionSealer it only reads storage: a generated key that does not
// exist yet is created, under the storage lock, by the first request that
// needs it (a session going upstream, or the JWKS), so `embedgate
// validate` writes nothing and instances sharing storage agree on one key.
func (h *Handler) provisionAssertion(st certmagic.Storage) (gateway.Assertions, error) {
	a := h.Assertion
	if a == nil {
		return nil, nil
	}
	var keys assertion.KeySource
	if len(a.Keys) > 0 {
		ring, err := loadAssertionKeys(a.Keys)
		if err != nil {
			return nil, err
		}
		keys = ring
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ring, err := loadAssertionKey(ctx, st)
		switch {
		case err == nil:
			keys = ring
		case errors.Is(err, fs.ErrNotExist):
			keys = newLazyAssertionKey(st)
		default:
			return nil, fmt.Errorf("assertion: no key configured and the stored one cannot be read: %w", err)
		}
	}
	claims := make([]string, len(h.ForwardClaims))
	for i, fc := range h.ForwardClaims {
		claims[i] = fc.Claim
	}
	iss, err := assertion.New(assertion.Config{
		Header: a.Header, Audience: a.Audience, TTL: time.Duration(a.TTL),
		Claims: claims, SessionTTL: time.Duration(h.SessionTTL), Keys: keys,
	})
	if err != nil {
		return nil, err
	}
	return iss, nil
}

// loadAssertionKeys reads the configured key files into a ring.
func loadAssertionKeys(cfg []AssertionKey) (*assertion.Ring, error) {
	keys := make([]assertion.Key, len(cfg))
	for i, c := range cfg {
		file, err := resolvePath(c.File)
		if err != nil {
			return nil, fmt.Errorf("assertion: key #%d: %w", i+1, err)
		}
		data, err := trustfile.Read(file, trustfile.MaxKeyFile)
		if err != nil {
			return nil, fmt.Errorf("assertion: key #%d: %w", i+1, err)
		}
		k, err := assertion.ParseKeyPEM(data)
		if err != nil {
			return nil, fmt.Errorf("assertion: key #%d (%s): %w", i+1, file, err)
		}
		k.KID = c.KID
		keys[i] = k
	}
	return assertion.NewRing(keys)
}

// lazyAssertionKey loads or creates the stored key on first use.
type lazyAssertionKey struct{ lazyStored[assertion.Ring] }

func newLazyAssertionKey(st certmagic.Storage) *lazyAssertionKey {
	return &lazyAssertionKey{lazyStored[assertion.Ring]{name: "assertion key " + assertionStorageKey,
		make: func(ctx context.Context) (*assertion.Ring, error) { return storedAssertionKey(ctx, st) }}}
}

// Ring is the stored key's ring: one atomic load once it exists.
func (l *lazyAssertionKey) Ring() (*assertion.Ring, error) { return l.get() }

// loadAssertionKey reads the stored key without writing anything.
func loadAssertionKey(ctx context.Context, st certmagic.Storage) (*assertion.Ring, error) {
	data, err := st.Load(ctx, assertionStorageKey)
	if err != nil {
		return nil, err
	}
	k, err := assertion.ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("stored key %s is corrupt; delete it to generate a new one: %w", assertionStorageKey, err)
	}
	return assertion.NewRing([]assertion.Key{k})
}

// storedAssertionKey loads the key from storage, creating it under the
// storage lock so that concurrent instances end up with the same one.
func storedAssertionKey(ctx context.Context, st certmagic.Storage) (*assertion.Ring, error) {
	return loadOrCreate(ctx, st, assertionStorageKey, loadAssertionKey, func() (*assertion.Ring, []byte, error) {
		k, pemBytes, err := assertion.GenerateKey()
		if err != nil {
			return nil, nil, err
		}
		r, err := assertion.NewRing([]assertion.Key{k})
		return r, pemBytes, err
	})
}

// Interface guards
var _ assertion.KeySource = (*lazyAssertionKey)(nil)
