package main

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/caddyserver/certmagic"
)

// The dry-run storage reads through to the configured one and keeps every
// write, delete and lock in memory: the directory on disk never changes.
func TestDryRunStorageWritesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	disk := &certmagic.FileStorage{Path: dir}
	if err := disk.Store(ctx, "pki/authorities/local/root.crt", []byte("existing root")); err != nil {
		t.Fatal(err)
	}
	before := tree(t, dir)
	s := &dryRunStorage{under: disk, written: map[string]dryRunEntry{}, deleted: map[string]bool{}, locks: map[string]*sync.Mutex{}}

	if got, err := s.Load(ctx, "pki/authorities/local/root.crt"); err != nil || string(got) != "existing root" {
		t.Fatalf("read-through: %q %v", got, err)
	}
	if err := s.Lock(ctx, "issue_cert"); err != nil {
		t.Fatal(err)
	}
	if err := s.Store(ctx, "pki/authorities/local/root.key", []byte("new key")); err != nil {
		t.Fatal(err)
	}
	if err := s.Store(ctx, "embedgate/session_key", []byte("k")); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlock(ctx, "issue_cert"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(ctx, "pki/authorities/local/root.key"); err != nil || string(got) != "new key" {
		t.Fatalf("own write: %q %v", got, err)
	}
	if info, err := s.Stat(ctx, "embedgate/session_key"); err != nil || info.Size != 1 || !info.IsTerminal {
		t.Fatalf("stat of own write: %+v %v", info, err)
	}
	keys, err := s.List(ctx, "pki/authorities/local", false)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if want := []string{"pki/authorities/local/root.crt", "pki/authorities/local/root.key"}; !slices.Equal(keys, want) {
		t.Fatalf("list: %q, want %q", keys, want)
	}
	if top, _ := s.List(ctx, "", false); !slices.Contains(top, "embedgate") || !slices.Contains(top, "pki") {
		t.Fatalf("top-level list: %q", top)
	}
	if err := s.Delete(ctx, "pki/authorities/local/root.crt"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "pki/authorities/local/root.crt") {
		t.Fatal("a key deleted here still exists")
	}
	if _, err := s.Load(ctx, "pki/authorities/local/root.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("load of a deleted key: %v", err)
	}

	if after := tree(t, dir); !slices.Equal(before, after) {
		t.Fatalf("disk changed: %q -> %q", before, after)
	}
	if got, _ := disk.Load(ctx, "pki/authorities/local/root.crt"); string(got) != "existing root" {
		t.Fatal("the delete reached the disk")
	}
}

// The adapter keeps the config's own storage, as the module's "under".
func TestWrapStorageKeepsConfiguredStorage(t *testing.T) {
	out, err := wrapStorage([]byte(`{"storage":{"module":"file_system","root":"/x"},"apps":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Storage struct {
			Module string          `json:"module"`
			Under  json.RawMessage `json:"under"`
		} `json:"storage"`
		Apps json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.Module != "embedgate_validate" || string(cfg.Storage.Under) != `{"module":"file_system","root":"/x"}` || string(cfg.Apps) != "{}" {
		t.Fatalf("wrapped: %s", out)
	}
	out, err = wrapStorage([]byte(`{}`))
	if err != nil || string(out) != `{"storage":{"module":"embedgate_validate"}}` {
		t.Fatalf("no storage: %s %v", out, err)
	}
	if _, err := wrapStorage([]byte(`[`)); err == nil {
		t.Fatal("bad JSON accepted")
	}
}

func TestIsCaddyfileName(t *testing.T) {
	for name, want := range map[string]bool{"Caddyfile": true, "/etc/Caddyfile.prod": true, "site.caddyfile": true, "caddy.json": false, "": false} {
		if got := isCaddyfileName(name); got != want {
			t.Errorf("%q: %v", name, got)
		}
	}
}

func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, p+" "+info.ModTime().String())
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}
