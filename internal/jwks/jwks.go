// Package jwks fetches and caches a tenant's JSON Web Key Set (RFC 7517),
// such as the signing keys an identity provider publishes, and serves them to
// the token verifier as a tenant.KeySource.
//
// The cache only ever fetches the URL it was built with: nothing in a token
// (jku, x5u, a kid that looks like a URL) can make it fetch anything else. It
// fetches once at Start, refreshes after the response's Cache-Control max-age
// (clamped to [MinRefresh, MaxRefresh]; DefaultRefresh without one), and
// refetches when asked for an unknown kid, but never more than once per
// MinInterval whatever the trigger. A failed fetch keeps the last good set.
// Bodies are bounded in size and fetches in time. Keys are admitted only
// with exactly one algorithm from the verifier's allowlist: symmetric keys
// (kty oct), private keys, RSA keys without alg, and anything outside RS256,
// ES256 (P-256) and EdDSA (Ed25519) are refused.
//
// Time is injected (Options.Now), so tests drive refreshes with a fake clock
// and never sleep.
package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/embedgate/embedgate/internal/policy"
	"github.com/embedgate/embedgate/internal/tenant"
)

// Bounds on fetching and refreshing.
const (
	// MinRefresh and MaxRefresh clamp the Cache-Control max-age.
	MinRefresh = 5 * time.Minute
	MaxRefresh = 24 * time.Hour
	// DefaultRefresh applies when the response has no max-age.
	DefaultRefresh = time.Hour
	// MinInterval is the least time between two fetches, whatever triggers
	// them (schedule, unknown kid, retry after a failure); only Start is
	// exempt.
	MinInterval = time.Minute
	// DefaultTimeout bounds one fetch, connection to last byte.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxBytes bounds a response body.
	DefaultMaxBytes = 256 << 10
	// MaxKeys bounds the keys of one set.
	MaxKeys = 100
	// maxRSABits bounds the work of one RSA verification.
	maxRSABits = 8192
)

// Options configure a Cache.
type Options struct {
	// URL is the only URL ever fetched: https, or http for loopback hosts.
	URL string
	// Client makes the requests. Nil means NewClient().
	Client *http.Client
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Timeout bounds one fetch. Zero means DefaultTimeout.
	Timeout time.Duration
	// MaxBytes bounds the response body. Zero means DefaultMaxBytes.
	MaxBytes int64
	// OnError receives fetch failures (the last good set stays in use) and
	// refused keys (the rest of the set is used). Nil drops them.
	OnError func(error)
}

// NewClient is the default client: no redirects (the configured URL is the
// only one fetched), proxies from the environment, DefaultTimeout overall.
func NewClient() *http.Client {
	var tr http.RoundTripper = &http.Transport{Proxy: http.ProxyFromEnvironment, TLSHandshakeTimeout: DefaultTimeout}
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	}
	return &http.Client{
		Transport: tr,
		Timeout:   DefaultTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("jwks: redirects are not followed; configure the final URL")
		},
	}
}

// Cache is one tenant's key set. It is safe for concurrent use and starts no
// goroutine of its own beyond a bounded background refresh.
type Cache struct {
	opts Options

	mu       sync.Mutex
	keys     []tenant.Key          // the current set; replaced, never mutated
	byKID    map[string]tenant.Key // keys with a kid
	next     time.Time             // when the set is due for a refresh
	last     time.Time             // start of the last fetch attempt
	inflight chan struct{}         // closed when the running fetch ends
	fetches  int                   // fetch attempts, for tests and metrics
}

// New checks opts and returns a Cache with no keys; call Start to fetch.
func New(opts Options) (*Cache, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || u.User != nil || !policy.SecureURL(u) {
		return nil, errors.New("jwks: URL must be absolute https (http only for localhost), without user info")
	}
	if opts.Client == nil {
		opts.Client = NewClient()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.OnError == nil {
		opts.OnError = func(error) {}
	}
	return &Cache{opts: opts, byKID: map[string]tenant.Key{}}, nil
}

// Start fetches the set now, whatever MinInterval says, and waits for it. A
// failure is returned (and also reported to OnError); the cache then retries
// on use, at most once per MinInterval.
func (c *Cache) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.inflight != nil {
		ch := c.inflight
		c.mu.Unlock()
		<-ch
		return nil
	}
	ch := c.begin()
	c.mu.Unlock()
	return c.fetch(ctx, ch)
}

// Keys returns the current set. When the set is due for a refresh, one
// starts in the background and this call still returns the current set.
func (c *Cache) Keys() []tenant.Key {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshIfDueLocked()
	return c.keys
}

// Lookup returns the key with this kid. For an unknown kid it refetches the
// set and waits for it, unless a fetch started less than MinInterval ago: a
// flood of tokens with made-up kids costs at most one fetch per minute.
func (c *Cache) Lookup(kid string) (tenant.Key, bool) {
	c.mu.Lock()
	if k, ok := c.byKID[kid]; ok {
		c.refreshIfDueLocked()
		c.mu.Unlock()
		return k, true
	}
	switch {
	case c.inflight != nil:
		ch := c.inflight
		c.mu.Unlock()
		<-ch
		c.mu.Lock()
	case c.mayFetchLocked():
		ch := c.begin()
		c.mu.Unlock()
		_ = c.fetch(context.Background(), ch)
		c.mu.Lock()
	}
	k, ok := c.byKID[kid]
	c.mu.Unlock()
	return k, ok
}

// Fetches is the number of fetch attempts so far.
func (c *Cache) Fetches() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetches
}

// NextRefresh is when the set is next due for a refresh.
func (c *Cache) NextRefresh() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next
}

func (c *Cache) mayFetchLocked() bool {
	return c.fetches == 0 || c.opts.Now().Sub(c.last) >= MinInterval
}

func (c *Cache) refreshIfDueLocked() {
	if c.inflight != nil || !c.mayFetchLocked() || c.opts.Now().Before(c.next) {
		return
	}
	ch := c.begin()
	go func() { _ = c.fetch(context.Background(), ch) }()
}

// begin marks a fetch as running; c.mu must be held.
func (c *Cache) begin() chan struct{} {
	ch := make(chan struct{})
	c.inflight = ch
	c.last = c.opts.Now()
	c.fetches++
	return ch
}

// fetch runs one fetch and installs its result; it closes ch when done.
func (c *Cache) fetch(ctx context.Context, ch chan struct{}) error {
	keys, maxAge, refused, err := c.get(ctx)
	for _, r := range refused {
		c.opts.OnError(r)
	}
	c.mu.Lock()
	defer func() {
		c.inflight = nil
		close(ch)
		c.mu.Unlock()
	}()
	if err != nil {
		// Keep the last good set; try again once MinInterval has passed.
		c.next = c.last.Add(MinInterval)
		err = fmt.Errorf("jwks: fetching %s: %w (keeping the last good set of %d key(s))", c.opts.URL, err, len(c.keys))
		c.opts.OnError(err)
		return err
	}
	byKID := make(map[string]tenant.Key, len(keys))
	for _, k := range keys {
		if k.KID != "" {
			byKID[k.KID] = k
		}
	}
	c.keys, c.byKID = keys, byKID
	c.next = c.opts.Now().Add(maxAge)
	return nil
}

// get fetches and parses the set; err means nothing usable came back.
func (c *Cache) get(ctx context.Context) ([]tenant.Key, time.Duration, []error, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.opts.URL, nil)
	if err != nil {
		return nil, 0, nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.opts.Client.Do(req)
	if err != nil {
		return nil, 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	if resp.ContentLength > c.opts.MaxBytes {
		return nil, 0, nil, fmt.Errorf("body is %d bytes, limit %d", resp.ContentLength, c.opts.MaxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxBytes+1))
	if err != nil {
		return nil, 0, nil, err
	}
	if int64(len(body)) > c.opts.MaxBytes {
		return nil, 0, nil, fmt.Errorf("body is over the %d-byte limit", c.opts.MaxBytes)
	}
	keys, refused, err := Parse(body)
	if err != nil {
		return nil, 0, nil, err
	}
	return keys, maxAge(resp.Header), refused, nil
}

// maxAge reads Cache-Control max-age, clamped to [MinRefresh, MaxRefresh].
// no-cache and no-store count as zero, so they clamp to MinRefresh.
func maxAge(h http.Header) time.Duration {
	d, found := DefaultRefresh, false
	for _, v := range h.Values("Cache-Control") {
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimSpace(strings.ToLower(part))
			switch {
			case part == "no-cache" || part == "no-store":
				d, found = 0, true
			case strings.HasPrefix(part, "max-age=") && !found:
				n, err := strconv.ParseInt(strings.Trim(part[len("max-age="):], `"`), 10, 64)
				if err != nil || n < 0 {
					continue
				}
				if n > int64(MaxRefresh/time.Second) {
					n = int64(MaxRefresh / time.Second)
				}
				d, found = time.Duration(n)*time.Second, true
			}
		}
	}
	return min(max(d, MinRefresh), MaxRefresh)
}

// jwk is one key as published. Members not read here (x5c, x5t, ...) are
// ignored; x5u, like any URL, is never fetched.
type jwk struct {
	Kty    string   `json:"kty"`
	Kid    *string  `json:"kid"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	Alg    string   `json:"alg"`
	Crv    string   `json:"crv"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
	D      *string  `json:"d"`
	K      *string  `json:"k"`
}

// Parse reads a JWK Set document. It fails only when the document itself is
// unusable (not a JSON object with a keys array, too many keys); each key
// that cannot be admitted is left out and reported in refused. Keys that are
// not for signatures (use other than sig, key_ops without verify) are left
// out silently. A kid that appears twice is left out altogether: neither key
// could be told apart.
func Parse(body []byte) (keys []tenant.Key, refused []error, err error) {
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, nil, errors.New("body is not a JSON object")
	}
	if doc.Keys == nil {
		return nil, nil, errors.New(`document has no "keys" array`)
	}
	if len(*doc.Keys) > MaxKeys {
		return nil, nil, fmt.Errorf("document has %d keys, limit %d", len(*doc.Keys), MaxKeys)
	}
	count := map[string]int{}
	var parsed []tenant.Key
	for i, raw := range *doc.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			refused = append(refused, fmt.Errorf("jwks: key #%d: not a JSON Web Key", i+1))
			continue
		}
		k, skip, err := admit(j)
		if err != nil {
			refused = append(refused, fmt.Errorf("jwks: key #%d%s: %w", i+1, kidNote(j.Kid), err))
			continue
		}
		if skip {
			continue
		}
		if k.KID != "" {
			count[k.KID]++
		}
		parsed = append(parsed, k)
	}
	for _, k := range parsed {
		if n := count[k.KID]; k.KID != "" && n != 1 {
			if n > 1 {
				refused = append(refused, fmt.Errorf("jwks: kid %q appears %d times; none of those keys is used", k.KID, n))
				count[k.KID] = 0 // reported once
			}
			continue
		}
		keys = append(keys, k)
	}
	return keys, refused, nil
}

func kidNote(kid *string) string {
	if kid == nil || *kid == "" {
		return ""
	}
	return fmt.Sprintf(" (kid %q)", *kid)
}

// b64 is the encoding of JWK members: unpadded base64url (RFC 7518 §6).
var b64 = base64.RawURLEncoding.Strict()

// admit turns a JWK into a verification key pinned to one algorithm, or says
// why not. skip reports a key that is valid but not for verifying signatures.
func admit(j jwk) (k tenant.Key, skip bool, err error) {
	if j.Use != "" && j.Use != "sig" {
		return k, true, nil
	}
	if j.KeyOps != nil {
		verify := false
		for _, op := range j.KeyOps {
			verify = verify || op == "verify"
		}
		if !verify {
			return k, true, nil
		}
	}
	if j.Kid != nil {
		k.KID = *j.Kid
	}
	if j.D != nil {
		return k, false, errors.New("holds private key material (d); publish public keys only")
	}
	switch j.Kty {
	case "oct":
		return k, false, errors.New("symmetric key (kty oct) refused: a key set must hold public keys only")
	case "RSA":
		// An RSA key serves RS256, RS384, RS512, PS256...: only an explicit
		// alg pins it to the one the verifier accepts.
		if j.Alg != tenant.RS256 {
			if j.Alg == "" {
				return k, false, errors.New("RSA key without alg: its algorithm is ambiguous (want alg RS256)")
			}
			return k, false, fmt.Errorf("alg %q is not accepted for RSA (want RS256)", j.Alg)
		}
		pub, err := rsaKey(j.N, j.E)
		if err != nil {
			return k, false, err
		}
		k.Public = pub
	case "EC":
		if j.Crv != "P-256" {
			return k, false, fmt.Errorf("EC curve %q is not accepted (want P-256)", j.Crv)
		}
		if j.Alg != "" && j.Alg != tenant.ES256 {
			return k, false, fmt.Errorf("alg %q does not fit a P-256 key (want ES256)", j.Alg)
		}
		x, errX := b64.DecodeString(j.X)
		y, errY := b64.DecodeString(j.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return k, false, errors.New("EC key: x and y must be 32-byte base64url values")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return k, false, errors.New("EC key: the point is not on P-256")
		}
		k.Public = pub
	case "OKP":
		if j.Crv != "Ed25519" {
			return k, false, fmt.Errorf("OKP curve %q is not accepted (want Ed25519)", j.Crv)
		}
		if j.Alg != "" && j.Alg != tenant.EdDSA {
			return k, false, fmt.Errorf("alg %q is not accepted for Ed25519 (want EdDSA)", j.Alg)
		}
		x, err := b64.DecodeString(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return k, false, errors.New("Ed25519 key: x must be a 32-byte base64url value")
		}
		k.Public = ed25519.PublicKey(x)
	case "":
		return k, false, errors.New("no kty")
	default:
		return k, false, fmt.Errorf("kty %q is not accepted (want RSA, EC or OKP)", j.Kty)
	}
	// The JWK's own fields are checked above; which keys verify, and with
	// which algorithm, is tenant's one rule.
	accepted, err := tenant.AcceptPublicKey(k.Public)
	if err != nil {
		return k, false, err
	}
	k.Alg = accepted.Alg
	return k, false, nil
}

func rsaKey(n64, e64 string) (*rsa.PublicKey, error) {
	nb, errN := b64.DecodeString(n64)
	eb, errE := b64.DecodeString(e64)
	if errN != nil || errE != nil || len(nb) == 0 || len(eb) == 0 || len(eb) > 4 || nb[0] == 0 || eb[0] == 0 {
		return nil, errors.New("RSA key: n and e must be minimal base64url integers")
	}
	n := new(big.Int).SetBytes(nb)
	// Only the upper bound here (a huge modulus is a CPU cost per verify);
	// the lower one is tenant.AcceptPublicKey's.
	if bits := n.BitLen(); bits > maxRSABits {
		return nil, fmt.Errorf("RSA key is %d bits, at most %d accepted", bits, maxRSABits)
	}
	e := 0
	for _, b := range eb {
		e = e<<8 | int(b)
	}
	if e < 3 || e%2 == 0 || e > 1<<31-1 {
		return nil, errors.New("RSA key: e must be an odd integer of at least 3")
	}
	return &rsa.PublicKey{N: n, E: e}, nil
}

var _ tenant.KeySource = (*Cache)(nil)
