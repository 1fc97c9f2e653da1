package caddymodule

// The generated keys (embedgate/session_key, embedgate/assertion_key) follow
// one rule: read at Provision, which writes nothing; created on first use,
// under Caddy's storage lock, so that instances sharing the storage create
// one key between them and all use it.

import (
	"context"
	"errors"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/embedgate/embedgate/internal/reason"
)

// storedKeyTimeout bounds the first load-or-create, lock wait included.
const storedKeyTimeout = 30 * time.Second

// loadOrCreate returns the value stored at name, or, when there is none,
// stores what create makes and returns that: under the storage lock, so a
// concurrent instance either creates it first (and load reads it) or waits.
func loadOrCreate[T any](ctx context.Context, st certmagic.Storage, name string,
	load func(context.Context, certmagic.Storage) (T, error), create func() (T, []byte, error)) (T, error) {
	var zero T
	if err := st.Lock(ctx, name); err != nil {
		return zero, err
	}
	defer func() { _ = st.Unlock(context.Background(), name) }()
	v, err := load(ctx, st)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return v, err
	}
	v, stored, err := create()
	if err != nil {
		return zero, err
	}
	if err := st.Store(ctx, name, stored); err != nil {
		return zero, err
	}
	return v, nil
}

// lazyStored holds what a stored key becomes (a sealer, a key ring), made
// on first use by make and then one atomic load per request.
type lazyStored[T any] struct {
	name string // the storage key, for errors
	make func(ctx context.Context) (*T, error)

	mu    sync.Mutex // serializes the first make in this process
	value atomic.Pointer[T]
}

// get is the value; a failure to make it is store_unavailable, and the next
// call tries again.
func (l *lazyStored[T]) get() (*T, error) {
	if v := l.value.Load(); v != nil {
		return v, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if v := l.value.Load(); v != nil {
		return v, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), storedKeyTimeout)
	defer cancel()
	v, err := l.make(ctx)
	if err != nil {
		return nil, reason.Errorf(reason.StoreUnavailable, "%s: %v", l.name, err)
	}
	l.value.Store(v)
	return v, nil
}
