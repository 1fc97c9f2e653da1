package tenant

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/embedgate/embedgate/internal/trustfile"
)

func skipOnWindows(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("mode bits say nothing on Windows")
	}
}

// Attack: a tenants file any local user may write lets that user add a
// tenant, or swap an existing tenant's secret for their own, and mint
// identities the gateway then hands the app. Such a file is refused when
// read, and a watcher keeps the tenants in force until its mode is fixed.
func TestTenantsFileWritableByOthersRefused(t *testing.T) {
	skipOnWindows(t)
	path := filepath.Join(t.TempDir(), "tenants.json")
	writeTenants(t, path, 0, 1, "")
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadFile(path); !errors.Is(err, trustfile.ErrWritableByOthers) || !strings.Contains(err.Error(), "tenants file: ") {
		t.Fatalf("ReadFile of a 0666 file = %v; want a tenants file error matching ErrWritableByOthers", err)
	}

	// In force at mode 0600, then rewritten while others may write it.
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	var applied []int
	var events []FileEvent
	w := &Watcher{Path: path,
		Apply:  func(cfgs []Config) error { applied = append(applied, len(cfgs)); return nil },
		Report: func(e FileEvent) { events = append(events, e) }}
	_, v, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w.Seed(v)
	writeTenants(t, path, 0, 2, "")
	if err := os.Chmod(path, 0o646); err != nil {
		t.Fatal(err)
	}
	touchLater(t, path)
	for range 3 {
		w.Check()
	}
	if len(applied) != 0 {
		t.Fatalf("a file others may write was applied: %v", applied)
	}
	if len(events) != 1 || events[0].Kind != FileUnreadable || !errors.Is(events[0].Err, trustfile.ErrWritableByOthers) {
		t.Fatalf("events %+v; want one FileUnreadable for the mode", events)
	}

	// chmod moves neither size nor mtime: the fix still applies.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	w.Check()
	if len(applied) != 1 || applied[0] != 2 {
		t.Fatalf("after chmod o-w: applied %v, want [2]", applied)
	}

	// A chmod alone, with no write, is reported on the next poll; the
	// tenants in force stay, and the fix is reported as readable again.
	events = nil
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	w.Check()
	w.Check()
	if len(events) != 1 || events[0].Kind != FileUnreadable || !errors.Is(events[0].Err, trustfile.ErrWritableByOthers) {
		t.Fatalf("chmod o+w alone: events %+v; want one FileUnreadable for the mode", events)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	w.Check()
	if len(events) != 2 || events[1].Kind != FileReadable || len(applied) != 1 {
		t.Fatalf("chmod o-w after: events %+v, applied %v; want FileReadable and no reload", events, applied)
	}
}

// Attack: a public key file others may write lets them put in their own
// key and sign tokens for the tenant.
func TestPublicKeyFileWritableByOthersRefused(t *testing.T) {
	skipOnWindows(t)
	path := filepath.Join(t.TempDir(), "idp.pem")
	if err := os.WriteFile(path, []byte(lsPEM(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{ID: "acme", PublicKeys: []PublicKeyConfig{{File: path}}}
	if _, err := NewRegistry([]Config{cfg}); err != nil {
		t.Fatalf("a 0600 key file: %v", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	_, err := NewRegistry([]Config{cfg})
	if !errors.Is(err, trustfile.ErrWritableByOthers) || !strings.Contains(err.Error(), `tenant "acme"`) {
		t.Fatalf("a 0666 key file: %v; want the tenant named and ErrWritableByOthers", err)
	}
}
