package caddymodule

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/embedgate/embedgate/internal/tenant"
)

// TestProvisionOfflineChecksBeforeJWKSFetch: Provision promises "every
// check that needs no network runs first, so a bad config fails in
// milliseconds". A short session_key, an unusable assertion key file and an
// unparsable Redis URL need no network, yet each was found only after the
// tenants' JWKS had been fetched (the registry build waits on the first
// fetch, up to 10s).
func TestProvisionOfflineChecksBeforeJWKSFetch(t *testing.T) {
	cases := map[string]struct {
		h    Handler
		want string
	}{
		"short session_key": {Handler{SessionKeys: []string{"short"}}, "session_key #1"},
		"assertion key file missing": {Handler{SessionKeys: []string{strings.Repeat("s", 32)},
			Assertion: &AssertionConfig{Keys: []AssertionKey{{File: "/nonexistent/assertion.pem"}}}}, "assertion"},
		"redis url of an unknown scheme": {Handler{SessionKeys: []string{strings.Repeat("s", 32)},
			Store: &StoreConfig{Type: "redis", URL: "http://127.0.0.1:1"}}, "redis url"},
		"skip_verify on a plain redis url": {Handler{SessionKeys: []string{strings.Repeat("s", 32)},
			Store: &StoreConfig{Type: "redis", URL: "redis://127.0.0.1:1/0?skip_verify=true"}}, "rediss"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			addr, hits := connCounter(t)
			var err error
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			h := c.h
			h.Tenants = []tenant.Config{{ID: "acme", JWKS: "http://" + addr + "/jwks.json"}}
			func() {
				// A caddy.Context made in a test has no storage: reaching it
				// means the check came too late.
				defer func() {
					if p := recover(); p != nil {
						err = fmt.Errorf("panic past the offline checks: %v", p)
					}
				}()
				err = h.Provision(ctx)
			}()
			_ = h.Cleanup()
			if n := hits.Load(); n != 0 {
				t.Fatalf("%d connection(s) to the JWKS server before the offline config error (%v) was reported", n, err)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Provision: %v, want an error about %q", err, c.want)
			}
		})
	}
}

// TestUnsetJWKSPlaceholderIsAnError: a jwks URL given as a placeholder
// that resolves to nothing loaded as "no jwks", and the tenant (or subject
// issuer) silently lost its identity provider's keys. README: "A
// placeholder that resolves to nothing is a config error".
func TestUnsetJWKSPlaceholderIsAnError(t *testing.T) {
	key := []tenant.SecretConfig{{Secret: strings.Repeat("k", 32)}}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pemFile := filepath.Join(t.TempDir(), "idp.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]tenant.Config{
		"tenant jwks": {ID: "acme", Keys: key, JWKS: "{env.EG_REVIEW_UNSET_JWKS}"},
		"subject_issuer jwks": {ID: "acme", Keys: key, APIKeys: []string{strings.Repeat("a", 64)},
			SubjectIssuers: []tenant.SubjectIssuerConfig{{Issuer: "https://idp.test", Audiences: []string{"api"},
				JWKS: "{env.EG_REVIEW_UNSET_JWKS}", PublicKeys: []tenant.PublicKeyConfig{{File: pemFile}}}}},
	} {
		t.Run(name, func(t *testing.T) {
			var refs jwksRefs
			defer refs.release()
			reg, err := registryFromConfigs(t.Context(), []tenant.Config{c}, caddy.NewReplacer(), nil, &refs)
			if err == nil {
				tn, _ := reg.ByID("acme")
				sj := ""
				if len(tn.SubjectIssuers) > 0 {
					sj = tn.SubjectIssuers[0].JWKS
				}
				t.Fatalf("loaded with jwks {env.EG_REVIEW_UNSET_JWKS} unset (tenant jwks now %q, subject issuer jwks %q): want a config error naming the field", tn.JWKS, sj)
			}
			if !strings.Contains(err.Error(), "jwks") {
				t.Fatalf("error %v does not name jwks", err)
			}
		})
	}
}

// TestStorePlanChecksURLWithoutConnecting: the URL check storePlan makes
// parses and builds a client of each kind without connecting.
func TestStorePlanChecksURLWithoutConnecting(t *testing.T) {
	a, hits := connCounter(t)
	for _, u := range []string{"redis://" + a + "/0", "redis+sentinel://" + a + "?master_name=m&addr=" + a, "redis+cluster://" + a + "?addr=" + a, "rediss://" + a + "?skip_verify=true"} {
		h := &Handler{Store: &StoreConfig{Type: "redis", URL: u}}
		if _, _, err := h.storePlan(); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"http://" + a, "redis+sentinel://" + a, "redis://" + a + "?skip_verify=true", "redis://" + a + "/notadb"} {
		h := &Handler{Store: &StoreConfig{Type: "redis", URL: u}}
		if _, _, err := h.storePlan(); err == nil {
			t.Errorf("%s: planned, want a URL error", u)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n := hits.Load(); n != 0 {
		t.Fatalf("storePlan connected %d time(s)", n)
	}
}

// connCounter listens on a loopback port and counts the connections made
// to it, closing each: a test's proof that nothing was dialled.
func connCounter(t *testing.T) (addr string, hits *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	hits = new(atomic.Int32)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			hits.Add(1)
			_ = conn.Close()
		}
	}()
	return l.Addr().String(), hits
}

// Secret exfiltration through a key-set URL: it is fetched, so a
// {file.*} or {env.*} inside it (a tenants file generated from customers'
// input) would send the gateway's session key or Redis password to the
// URL's host, in the query or by DNS. Only one placeholder starting the
// URL, as {env.NAME} (a base URL: its value names the host), is resolved.
func TestJWKSURLPlaceholdersOnlyWhole(t *testing.T) {
	t.Setenv("EG_TEST_SECRET", "s3cret-value")
	t.Setenv("EG_TEST_JWKS_URL", "https://idp.test/jwks")
	repl := caddy.NewReplacer()
	for _, bad := range []string{
		"https://evil.test/k?x={env.EG_TEST_SECRET}",
		"https://{env.EG_TEST_SECRET}.evil.test/k",
		"https://evil.test/k?x={file./etc/hostname}",
		"{file./etc/hostname}",
		"{env.EG_TEST_JWKS_URL}?x={env.EG_TEST_SECRET}",
		"https://evil.test/{}",
	} {
		got, err := resolveURL(repl, bad)
		if err == nil || strings.Contains(got, "s3cret") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: resolved to %q (%v), want refused", bad, got, err)
		}
	}
	for in, want := range map[string]string{
		"{env.EG_TEST_JWKS_URL}": "https://idp.test/jwks",
		"https://idp.test/jwks":  "https://idp.test/jwks",
		"":                       "",
	} {
		if got, err := resolveURL(repl, in); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
}
