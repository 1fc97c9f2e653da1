package caddymodule

import (
	"slices"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/embedgate/embedgate/internal/jwks"
	"github.com/embedgate/embedgate/internal/tenant"
)

// jwksPool keeps JWKS caches across config reloads, as statePool keeps the
// stores: after `embedgate reload`, a jwks URL still named keeps its cache
// (its keys, refresh schedule and MinInterval limit) rather than fetching
// its key set again. The key is a jwksKey, the resolved URL: nothing else
// changes how a cache fetches (client, timeout and size bound are the jwks
// defaults; one made configurable joins the key). Each tenantSet holds one
// reference per cache of its current registry (jwksRefs); the last release
// destructs the cache, which stops its fetches.
var jwksPool = caddy.NewUsagePool()

// pooledJWKS is a jwksPool value.
//
// The cache outlives the Handler that made it, so its OnError cannot be that
// Handler's logger: it reports to the holder that took it most recently and
// still holds it. During a reload that is the new Handler as soon as it is
// provisioned (one log line per error, not one per overlapping config), and
// a Handler that is cleaned up stops receiving, so nothing pins it. A
// cache that several tenants share reports under the first of them to ask
// for it in that holder's registry.
type pooledJWKS struct {
	cache *jwks.Cache

	mu      sync.Mutex
	holders []jwksHolder // oldest first
}

type jwksHolder struct {
	refs    *jwksRefs
	onError func(tenantID string, err error)
	tenant  string
}

func newPooledJWKS(k jwksKey) (*pooledJWKS, error) {
	p := &pooledJWKS{}
	c, err := jwks.New(jwks.Options{URL: k.url, Report: func(e jwks.Event) { p.report(e.Err) }})
	if err != nil {
		return nil, err
	}
	p.cache = c
	return p, nil
}

// Destruct stops the cache; jwksPool calls it on the last release.
func (p *pooledJWKS) Destruct() error {
	p.cache.Close()
	return nil
}

func (p *pooledJWKS) report(err error) {
	p.mu.Lock()
	var h jwksHolder
	if n := len(p.holders); n > 0 {
		h = p.holders[n-1]
	}
	p.mu.Unlock()
	if h.onError != nil {
		h.onError(h.tenant, err)
	}
}

// hold adds r as the newest holder, or names the tenant r reports under
// when it holds p already (a rebuild in which that tenant asks first).
func (p *pooledJWKS) hold(r *jwksRefs, onError func(string, error), tenant string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.holders {
		if p.holders[i].refs == r {
			p.holders[i].tenant = tenant
			return
		}
	}
	p.holders = append(p.holders, jwksHolder{r, onError, tenant})
}

func (p *pooledJWKS) unhold(r *jwksRefs) {
	p.mu.Lock()
	p.holders = slices.DeleteFunc(p.holders, func(h jwksHolder) bool { return h.refs == r })
	p.mu.Unlock()
}

// jwksRefs are one tenantSet's references into jwksPool: one per JWKS cache
// of its current registry. The zero value holds none. Builds and release
// are serialized by the caller (tenantSet.mu).
type jwksRefs struct {
	held     map[jwksKey]*pooledJWKS
	released bool // for good: the Handler was cleaned up
}

// release gives back every reference, for good: a build after it fails.
func (r *jwksRefs) release() {
	for k, p := range r.held {
		p.unhold(r)
		_, _ = jwksPool.Delete(k)
	}
	r.held, r.released = nil, true
}

// releaseJWKS gives back s's JWKS caches; Cleanup calls it. It waits for a
// tenants-file rebuild in progress, which then holds nothing either.
func (s *tenantSet) releaseJWKS() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jwks.release()
}

// jwksBuild gathers the JWKS caches of one registry build: those it keeps
// from the holder's current registry, those it takes from jwksPool and,
// without a holder (embed-inspect's one look), unpooled ones of its own.
// commit makes them the holder's and gives back the ones no longer used;
// abort gives back what the build took.
type jwksBuild struct {
	refs    *jwksRefs // nil: unpooled
	onError func(tenantID string, err error)
	next    map[jwksKey]*pooledJWKS
	taken   []jwksKey     // pool references this build took
	fresh   []*jwks.Cache // new caches, to fetch before the registry is used
	// unpooled are the caches of a build without a holder, by URL.
	unpooled map[jwksKey]*jwks.Cache
	// kept are the caches refs held already, with the first tenant of this
	// build to name each: the one it reports under once committed.
	kept map[jwksKey]string
}

// source is the build's tenant.WithKeySources constructor.
func (b *jwksBuild) source(id, url string) (tenant.KeySource, error) {
	k := jwksKey{url}
	if b.refs == nil {
		if c, ok := b.unpooled[k]; ok {
			return c, nil
		}
		c, err := jwks.New(jwks.Options{URL: url, Report: func(e jwks.Event) { b.onError(id, e.Err) }})
		if err != nil {
			return nil, err
		}
		if b.unpooled == nil {
			b.unpooled = map[jwksKey]*jwks.Cache{}
		}
		b.unpooled[k] = c
		b.fresh = append(b.fresh, c)
		return c, nil
	}
	if p, ok := b.next[k]; ok {
		// Asked again in this build (another tenant, or a subject issuer,
		// naming the same key set): one cache, one reference.
		return p.cache, nil
	}
	if p, ok := b.refs.held[k]; ok {
		// The tenant it reports under changes on commit only: a build
		// that fails leaves the running registry, and its names, as they were.
		if b.kept == nil {
			b.kept = map[jwksKey]string{}
		}
		b.kept[k] = id
		b.next[k] = p
		return p.cache, nil
	}
	v, loaded, err := jwksPool.LoadOrNew(k, func() (caddy.Destructor, error) { return newPooledJWKS(k) })
	if err != nil {
		return nil, err
	}
	p := v.(*pooledJWKS)
	b.taken = append(b.taken, k)
	p.hold(b.refs, b.onError, id)
	b.next[k] = p
	if !loaded {
		b.fresh = append(b.fresh, p.cache)
	}
	return p.cache, nil
}

func (b *jwksBuild) commit() {
	if b.refs == nil {
		return
	}
	for k, p := range b.refs.held {
		if _, kept := b.next[k]; !kept {
			p.unhold(b.refs)
			_, _ = jwksPool.Delete(k)
		}
	}
	for k, id := range b.kept {
		b.next[k].hold(b.refs, b.onError, id)
	}
	b.refs.held = b.next
}

func (b *jwksBuild) abort() {
	for _, k := range b.taken {
		b.next[k].unhold(b.refs)
		_, _ = jwksPool.Delete(k)
	}
	if b.refs == nil {
		for _, c := range b.fresh {
			c.Close() // a pooled one is closed by its last Delete
		}
	}
}
