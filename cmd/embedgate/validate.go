package main

// `embedgate validate` writes nothing to storage. Caddy's validate
// provisions every app, and provisioning writes: the pki app creates the
// local CA of a `tls internal` site. Here validate runs Caddy's own command
// unchanged (flags, --envfile, the adjacent Caddyfile, messages), through a
// config adapter that wraps whatever storage the config names in
// dryRunStorage: the configured storage module is still loaded and
// provisioned (so a bad one fails validation), reads go to it, and writes,
// deletes and locks stay in memory and vanish with the process.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/certmagic"
	"github.com/spf13/cobra"
)

const (
	dryRunAdapter  = "embedgate-validate"
	dryRunModuleID = "caddy.storage.embedgate_validate"
)

func init() {
	caddy.RegisterModule(new(dryRunStorage))
	caddyconfig.RegisterAdapter(dryRunAdapter, dryRunConfigAdapter{})
}

// wrapValidate makes c (Caddy's validate command) adapt the config through
// dryRunConfigAdapter, which runs the adapter the user chose first.
func wrapValidate(c *cobra.Command) {
	orig := c.RunE
	c.RunE = func(c *cobra.Command, args []string) error {
		if orig == nil {
			return nil
		}
		config, _ := c.Flags().GetString("config")
		adapter, _ := c.Flags().GetString("adapter")
		if config == "" {
			if _, err := os.Stat("Caddyfile"); err == nil {
				config = "Caddyfile" // Caddy's default, found the same way
			}
		}
		if adapter == "" && isCaddyfileName(config) {
			adapter = "caddyfile"
		}
		dryRunInner = adapter
		if err := c.Flags().Set("adapter", dryRunAdapter); err != nil {
			return err
		}
		return orig(c, args)
	}
}

// isCaddyfileName is Caddy's rule for picking the caddyfile adapter without
// --adapter: the file is named Caddyfile* or *.caddyfile.
func isCaddyfileName(path string) bool {
	base := strings.ToLower(filepath.Base(path))
	return path != "" && (strings.HasPrefix(base, "caddyfile") || filepath.Ext(base) == ".caddyfile")
}

// dryRunInner is the adapter the user asked for ("" for JSON), set by
// wrapValidate before Caddy's validate loads the config.
var dryRunInner string

// dryRunConfigAdapter adapts with dryRunInner, then wraps the config's
// storage in dryRunStorage.
type dryRunConfigAdapter struct{}

func (dryRunConfigAdapter) Adapt(body []byte, options map[string]any) ([]byte, []caddyconfig.Warning, error) {
	var warnings []caddyconfig.Warning
	if dryRunInner != "" {
		inner := caddyconfig.GetAdapter(dryRunInner)
		if inner == nil {
			return nil, nil, fmt.Errorf("unrecognized config adapter '%s'", dryRunInner)
		}
		var err error
		if body, warnings, err = inner.Adapt(body, options); err != nil {
			return nil, warnings, err
		}
	}
	out, err := wrapStorage(body)
	return out, warnings, err
}

// wrapStorage replaces the config's "storage" with dryRunStorage over it.
func wrapStorage(config []byte) ([]byte, error) {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(config, &cfg); err != nil {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	if cfg == nil {
		cfg = map[string]json.RawMessage{}
	}
	wrapped := map[string]any{"module": strings.TrimPrefix(dryRunModuleID, "caddy.storage.")}
	if under, ok := cfg["storage"]; ok {
		wrapped["under"] = under
	}
	raw, err := json.Marshal(wrapped)
	if err != nil {
		return nil, err
	}
	cfg["storage"] = raw
	return json.Marshal(cfg)
}

// dryRunStorage is the storage of `embedgate validate`: reads from the
// configured storage (Caddy's default file storage when none is named),
// writes, deletes and locks in memory only.
type dryRunStorage struct {
	// Under is the configured storage module. Default: Caddy's default
	// storage.
	Under json.RawMessage `json:"under,omitempty" caddy:"namespace=caddy.storage inline_key=module"`

	under   certmagic.Storage
	mu      sync.Mutex
	written map[string]dryRunEntry
	deleted map[string]bool
	locks   map[string]*sync.Mutex
}

type dryRunEntry struct {
	value    []byte
	modified time.Time
}

// CaddyModule returns the Caddy module information.
func (*dryRunStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: dryRunModuleID, New: func() caddy.Module { return new(dryRunStorage) }}
}

// Provision loads the configured storage module.
func (s *dryRunStorage) Provision(ctx caddy.Context) error {
	s.written, s.deleted, s.locks = map[string]dryRunEntry{}, map[string]bool{}, map[string]*sync.Mutex{}
	if s.Under == nil {
		s.under = caddy.DefaultStorage
		return nil
	}
	v, err := ctx.LoadModule(s, "Under")
	if err != nil {
		return fmt.Errorf("loading storage module: %w", err)
	}
	conv, ok := v.(caddy.StorageConverter)
	if !ok {
		return fmt.Errorf("storage module %T is not a storage", v)
	}
	s.under, err = conv.CertMagicStorage()
	return err
}

// CertMagicStorage returns s.
func (s *dryRunStorage) CertMagicStorage() (certmagic.Storage, error) { return s, nil }

func (s *dryRunStorage) Lock(ctx context.Context, name string) error {
	s.mu.Lock()
	l, ok := s.locks[name]
	if !ok {
		l = new(sync.Mutex)
		s.locks[name] = l
	}
	s.mu.Unlock()
	l.Lock()
	return nil
}

func (s *dryRunStorage) Unlock(_ context.Context, name string) error {
	s.mu.Lock()
	l, ok := s.locks[name]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("unlock %q: not locked", name)
	}
	l.Unlock()
	return nil
}

func (s *dryRunStorage) Store(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written[key] = dryRunEntry{value: append([]byte(nil), value...), modified: time.Now()}
	delete(s.deleted, key)
	return nil
}

// local answers from memory: the entry, or gone when deleted here.
func (s *dryRunStorage) local(key string) (e dryRunEntry, found, gone bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, found = s.written[key]
	return e, found, s.deleted[key]
}

func (s *dryRunStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if e, found, gone := s.local(key); found {
		return append([]byte(nil), e.value...), nil
	} else if gone {
		return nil, fs.ErrNotExist
	}
	return s.under.Load(ctx, key)
}

func (s *dryRunStorage) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.written, key)
	s.deleted[key] = true
	return nil
}

func (s *dryRunStorage) Exists(ctx context.Context, key string) bool {
	if _, found, gone := s.local(key); found || gone {
		return found
	}
	return s.under.Exists(ctx, key)
}

func (s *dryRunStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	if e, found, gone := s.local(key); found {
		return certmagic.KeyInfo{Key: key, Modified: e.modified, Size: int64(len(e.value)), IsTerminal: true}, nil
	} else if gone {
		return certmagic.KeyInfo{}, fs.ErrNotExist
	}
	return s.under.Stat(ctx, key)
}

// List merges the keys under path in the configured storage with those
// written here, less those deleted here.
func (s *dryRunStorage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	keys, err := s.under.List(ctx, path, recursive)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if !seen[k] && !s.deleted[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, k := range keys {
		add(k)
	}
	prefix := strings.TrimSuffix(path, "/")
	if prefix != "" {
		prefix += "/"
	}
	for k := range s.written {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		if first, _, nested := strings.Cut(rest, "/"); nested && !recursive {
			k = prefix + first
		}
		add(k)
	}
	if len(out) == 0 {
		return nil, fs.ErrNotExist
	}
	return out, nil
}

// Interface guards.
var (
	_ caddy.Provisioner      = (*dryRunStorage)(nil)
	_ caddy.StorageConverter = (*dryRunStorage)(nil)
	_ certmagic.Storage      = (*dryRunStorage)(nil)
	_ caddyconfig.Adapter    = dryRunConfigAdapter{}
)
