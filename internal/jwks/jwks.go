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
// Bodies are bounded in size and fetches in time; a caller's context bounds
// only its own wait, since one fetch serves every caller. Close stops it all. Keys are admitted only
// with exactly one algorithm from the verifier's allowlist: symmetric keys
// (kty oct), private keys, RSA keys without alg, and anything outside RS256,
// ES256 (P-256) and EdDSA (Ed25519) are refused.
//
// Time is injected (Options.Now), so tests drive refreshes with a fake clock
// and never sleep.
package jwks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"
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
	// Report receives fetch failures (the last good set stays in use) and
	// refused keys (the rest of the set is used). Nil drops them.
	Report func(Event)
}

// EventKind names what a Cache reports.
type EventKind int

// What a Cache reports.
const (
	// EventFetchFailed: a fetch failed (Event.Err); the last good set
	// stays in use, and the next fetch waits MinInterval.
	EventFetchFailed EventKind = iota + 1
	// EventKeyRefused: a fetched set held a key that is not used
	// (Event.Err says why); the rest of the set is.
	EventKeyRefused
)

// Event is one failure a Cache reports. Err never holds key material.
type Event struct {
	Kind EventKind
	Err  error
}

// NewClient is the default client: no redirects (the configured URL is the
// only one fetched), DefaultTimeout overall. https goes through the
// environment's proxy; http, which a key-set URL may only use for
// loopback (policy.SecureURL), never does, and connects to loopback
// addresses only: a proxy, or a DNS answer for a *.localhost name, would
// otherwise carry a key set in cleartext, free to forge.
func NewClient() *http.Client {
	return &http.Client{
		Transport: byScheme{https: newTransport(http.ProxyFromEnvironment, nil), http: loopbackTransport()},
		Timeout:   DefaultTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("jwks: redirects are not followed; configure the final URL")
		},
	}
}

// byScheme sends https and http requests through their own transports.
type byScheme struct{ https, http http.RoundTripper }

func (b byScheme) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" {
		return b.http.RoundTrip(r)
	}
	return b.https.RoundTrip(r)
}

// CloseIdleConnections is http.Client's, for both transports.
func (b byScheme) CloseIdleConnections() {
	for _, t := range []http.RoundTripper{b.https, b.http} {
		if c, ok := t.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}

// newTransport is Go's default transport with proxy and control.
func newTransport(proxy func(*http.Request) (*url.URL, error), control func(network, address string, c syscall.RawConn) error) *http.Transport {
	tr := &http.Transport{TLSHandshakeTimeout: DefaultTimeout}
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	}
	tr.Proxy = proxy
	if control != nil {
		d := &net.Dialer{Timeout: DefaultTimeout, Control: control}
		tr.DialContext = d.DialContext
	}
	return tr
}

// loopbackTransport is the transport of http requests: no proxy, and
// connections to loopback addresses only.
func loopbackTransport() *http.Transport { return newTransport(nil, loopbackOnly) }

// loopbackOnly refuses a connection to any address but a loopback one; it
// sees the address after name resolution.
func loopbackOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("jwks: http only to loopback addresses, not %s", address)
	}
	return nil
}

// ErrClosed is Start's error on a closed Cache.
var ErrClosed = errors.New("jwks: cache is closed")

// Cache is one tenant's key set. It is safe for concurrent use. Its only
// goroutines are its fetches, each bounded by Options.Timeout and cancelled
// by Close.
type Cache struct {
	opts Options
	// shown is the URL as errors name it: without its query, which may
	// hold a credential (?access_token=…).
	shown string
	// life is the context every fetch runs under: not the caller's, since
	// one fetch serves every caller waiting on it, and one caller giving up
	// must not fail the others (nor spend the MinInterval allowance on a
	// fetch nobody saw through). Close cancels it.
	life context.Context
	stop context.CancelFunc

	mu       sync.Mutex
	keys     []tenant.Key          // the current set; replaced, never mutated
	byKID    map[string]tenant.Key // keys with a kid
	next     time.Time             // when the set is due for a refresh
	last     time.Time             // start of the last fetch attempt
	inflight *run                  // the running fetch, if any
	fetches  int                   // fetch attempts, for tests and metrics
	closed   bool
}

// run is one fetch; done is closed once err is set and its keys, if any,
// are installed.
type run struct {
	done chan struct{}
	err  error
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
	if opts.Report == nil {
		opts.Report = func(Event) {}
	}
	c := &Cache{opts: opts, shown: policy.ShownURL(u), byKID: map[string]tenant.Key{}}
	c.life, c.stop = context.WithCancel(context.Background())
	return c, nil
}

// Start fetches the set now, whatever MinInterval says, and waits for it
// (or joins the fetch already running), until ctx is done. A failure is
// returned (and also reported); the cache then retries on use,
// at most once per MinInterval. ctx bounds the wait, not the fetch.
func (c *Cache) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	r := c.inflight
	if r == nil {
		r = c.beginLocked()
	}
	c.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the cache for good: a running fetch is cancelled and no other
// starts. The keys already fetched stay readable, for a registry that is
// still finishing requests. Close may be called more than once.
func (c *Cache) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.stop()
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
// flood of tokens with made-up kids costs at most one fetch per minute. The
// wait ends when ctx is done (the request's deadline or disconnect); the
// fetch itself goes on for the other callers, bounded by Options.Timeout.
func (c *Cache) Lookup(ctx context.Context, kid string) (tenant.Key, bool) {
	c.mu.Lock()
	if k, ok := c.byKID[kid]; ok {
		c.refreshIfDueLocked()
		c.mu.Unlock()
		return k, true
	}
	r := c.inflight
	if r == nil && !c.closed && c.mayFetchLocked() {
		r = c.beginLocked()
	}
	c.mu.Unlock()
	if r == nil {
		return tenant.Key{}, false
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return tenant.Key{}, false
	}
	c.mu.Lock()
	k, ok := c.byKID[kid]
	c.mu.Unlock()
	return k, ok
}

func (c *Cache) mayFetchLocked() bool {
	return c.fetches == 0 || c.opts.Now().Sub(c.last) >= MinInterval
}

func (c *Cache) refreshIfDueLocked() {
	if c.closed || c.inflight != nil || !c.mayFetchLocked() || c.opts.Now().Before(c.next) {
		return
	}
	c.beginLocked()
}

// beginLocked starts a fetch in the background; c.mu must be held.
func (c *Cache) beginLocked() *run {
	r := &run{done: make(chan struct{})}
	c.inflight = r
	c.last = c.opts.Now()
	c.fetches++
	go c.fetch(r)
	return r
}

// fetch runs one fetch, installs its result and ends r. Report is called
// without c.mu held (it may use the cache) but before r ends, so a caller
// that waited for the fetch has seen its reports.
func (c *Cache) fetch(r *run) {
	keys, maxAge, refused, err := c.get(c.life)
	c.mu.Lock()
	if err != nil {
		// Keep the last good set; try again once MinInterval has passed.
		c.next = c.last.Add(MinInterval)
		err = fmt.Errorf("jwks: fetching %s: %w (keeping the last good set of %d key(s))", c.shown, err, len(c.keys))
	} else {
		byKID := make(map[string]tenant.Key, len(keys))
		for _, k := range keys {
			if k.KID != "" {
				byKID[k.KID] = k
			}
		}
		c.keys, c.byKID = keys, byKID
		c.next = c.opts.Now().Add(maxAge)
	}
	c.mu.Unlock()
	if c.life.Err() == nil { // a failure Close caused is no outage
		for _, e := range refused {
			c.opts.Report(Event{Kind: EventKeyRefused, Err: e})
		}
		if err != nil {
			c.opts.Report(Event{Kind: EventFetchFailed, Err: err})
		}
	}
	c.mu.Lock()
	c.inflight = nil
	r.err = err
	close(r.done)
	c.mu.Unlock()
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
		return nil, 0, nil, policy.URLCause(err)
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
	dirs, _ := policy.ParseCacheControl(h.Values("Cache-Control"))
	for _, dir := range dirs {
		switch {
		case dir.Name == "no-cache" || dir.Name == "no-store":
			d, found = 0, true
		case dir.Name == "max-age" && !found:
			n, err := strconv.ParseInt(dir.Arg, 10, 64)
			if err != nil || n < 0 {
				continue
			}
			if n > int64(MaxRefresh/time.Second) {
				n = int64(MaxRefresh / time.Second)
			}
			d, found = time.Duration(n)*time.Second, true
		}
	}
	return min(max(d, MinRefresh), MaxRefresh)
}

var _ tenant.KeySource = (*Cache)(nil)
