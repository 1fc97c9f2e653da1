package tenant

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFile(t *testing.T) {
	tests := []struct {
		name, data, wantErr string
		wantN               int
	}{
		{name: "ok", data: `{"tenants":[{"id":"a","keys":[{"secret":"` + secret32 + `"}]}]}`, wantN: 1},
		{name: "empty list", data: `{"tenants":[]}`, wantN: 0},
		{name: "unknown field", data: `{"tenants":[{"id":"a","frame_ancestor":["https://x.test"]}]}`, wantErr: `unknown field "frame_ancestor"`},
		// encoding/json took the second spelling and kept the last.
		{name: "case variant after the field", data: `{"tenants":[{"id":"a","frame_ancestors":["https://app.acme.test"],"Frame_Ancestors":["https://evil.test"]}]}`,
			wantErr: `tenants[0]: unknown field "Frame_Ancestors"`},
		{name: "field given twice", data: `{"tenants":[{"id":"a","frame_ancestors":["https://app.acme.test"],"frame_ancestors":["https://evil.test"]}]}`,
			wantErr: `tenants[0]: field "frame_ancestors" given twice`},
		{name: "nested case variant", data: `{"tenants":[{"id":"a","keys":[{"secret":"s","Secret":"t"}]}]}`, wantErr: `tenants[0].keys[0]: unknown field "Secret"`},
		{name: "missing tenants", data: `{}`, wantErr: `missing "tenants"`},
		{name: "bad json", data: `{"tenants":[`, wantErr: "tenants file"},
		{name: "trailing data", data: `{"tenants":[]} {}`, wantErr: "trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfgs, err := ParseFile([]byte(tt.data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(cfgs) != tt.wantN {
				t.Fatalf("got %d tenants, err %v", len(cfgs), err)
			}
		})
	}
}

// writeTenants writes n tenants; ids start at tenant-<from>.
func writeTenants(t testing.TB, path string, from, n int, extra string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{"tenants":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"tenant-%d","keys":[{"secret":"%s"}],"frame_ancestors":["https://t%d.example"],"hosts":["t%d.gate.test"]}`, from+i, secret32, from+i, from+i)
	}
	b.WriteString(extra + `]}`)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // atomic, as deploy tools do
		t.Fatal(err)
	}
}

func TestWatcherAppliesValidAndKeepsPreviousOnInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenants.json")
	writeTenants(t, path, 0, 2, "")
	var current *Registry
	var reports []error
	w := &Watcher{
		Path: path,
		Apply: func(cfgs []Config) error {
			reg, err := NewRegistry(cfgs)
			if err != nil {
				return err
			}
			current = reg
			return nil
		},
		Report: func(e FileEvent) { reports = append(reports, e.Err) },
		// A still clock: a refused version is never due for its retry
		// here, so each report below is the new version's own.
		Now: func() time.Time { return time.Unix(1e9, 0) },
	}
	cfgs, v, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Apply(cfgs); err != nil {
		t.Fatal(err)
	}
	w.Seed(v)

	w.Check() // unchanged: nothing happens
	if len(reports) != 0 {
		t.Fatalf("unchanged file reloaded: %v", reports)
	}

	// A valid change applies.
	writeTenants(t, path, 0, 3, "")
	touchLater(t, path)
	w.Check()
	if current.Len() != 3 || len(reports) != 1 || reports[0] != nil {
		t.Fatalf("valid change: len=%d reports=%v", current.Len(), reports)
	}

	// Invalid files are refused whole, the previous set stays, the error names tenant and field.
	for _, bad := range []struct{ extra, want string }{
		{`,{"id":"short","keys":[{"secret":"x"}]}`, `tenant "short": key #1: secret is 1 bytes`},
		{`,{"id":"tenant-10","keys":[{"secret":"` + secret32 + `"}]}`, `tenant "tenant-10": duplicate tenant id`},
		{`,{"id":"dup-host","keys":[{"secret":"` + secret32 + `"}],"hosts":["t10.gate.test"]}`, `host "t10.gate.test" already belongs to tenant "tenant-10"`},
		{`,{"id":"bad-origin","keys":[{"secret":"` + secret32 + `"}],"frame_ancestors":["https://x.test/path"]}`, `tenant "bad-origin": frame_ancestors`},
		{`,{`, "tenants file"},
	} {
		before := current
		writeTenants(t, path, 10, 1, bad.extra)
		touchLater(t, path)
		w.Check()
		last := reports[len(reports)-1]
		if last == nil || !strings.Contains(last.Error(), bad.want) {
			t.Fatalf("bad file: report %v, want %q", last, bad.want)
		}
		if current != before {
			t.Fatal("an invalid file replaced the registry")
		}
		// The same bad content is reported once, not on every tick.
		n := len(reports)
		touchLater(t, path)
		w.Check()
		if len(reports) != n {
			t.Fatal("unchanged bad file reported again")
		}
	}

	// A fix applies, and a removed tenant is gone.
	writeTenants(t, path, 1, 1, "")
	touchLater(t, path)
	w.Check()
	if _, ok := current.ByID("tenant-0"); ok || current.Len() != 1 {
		t.Fatalf("after fix: len=%d", current.Len())
	}
}

// A write that lands between the first read and Seed (at startup the
// registry build, JWKS fetches included, takes up to 10s in that gap) must
// still be applied on the first check: Seed records the stat taken before
// the read, not the file as it is when Seed runs.
func TestWatcherSeedDoesNotSwallowWriteBeforeSeed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenants.json")
	writeTenants(t, path, 0, 1, "")
	cfgs, v, err := ReadFile(path)
	if err != nil || len(cfgs) != 1 {
		t.Fatalf("read: %d tenants, %v", len(cfgs), err)
	}

	// The gap: the deploy writes a new version before the watcher is seeded.
	writeTenants(t, path, 0, 2, "")
	touchLater(t, path)

	var applied []int
	w := &Watcher{
		Path:   path,
		Apply:  func(cfgs []Config) error { applied = append(applied, len(cfgs)); return nil },
		Report: func(e FileEvent) { t.Logf("report: %d %v", e.Kind, e.Err) },
	}
	w.Seed(v)
	w.Check()
	if len(applied) != 1 || applied[0] != 2 {
		t.Fatalf("write before Seed: applied %v, want [2]", applied)
	}
	w.Check() // and only once
	if len(applied) != 1 {
		t.Fatalf("applied again: %v", applied)
	}
}

// touchLater moves the mtime forward so the watcher sees a change even on
// filesystems with coarse timestamps.
func touchLater(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	later := fi.ModTime().Add(time.Second)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkLoad10kTenants measures reading and validating 10,000 tenants
// (target: well under 1 s).
func BenchmarkLoad10kTenants(b *testing.B) {
	path := filepath.Join(b.TempDir(), "tenants.json")
	writeTenants(b, path, 0, 10000, "")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		cfgs, _, err := ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		reg, err := NewRegistry(cfgs)
		if err != nil || reg.Len() != 10000 {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookup compares lookups at 1 and 10,000 tenants: both are map
// reads, so the cost must not grow with the tenant count.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1, 10000} {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "tenants.json")
			writeTenants(b, path, 0, n, "")
			cfgs, _, _ := ReadFile(path)
			reg, err := NewRegistry(cfgs)
			if err != nil {
				b.Fatal(err)
			}
			id, host := fmt.Sprintf("tenant-%d", n/2), fmt.Sprintf("t%d.gate.test", n/2)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, ok := reg.ByID(id); !ok {
					b.Fatal("missing")
				}
				if _, ok := reg.ByHost(host); !ok {
					b.Fatal("missing")
				}
			}
		})
	}
}

// A deleted tenants file is one failure, not one per poll: reported once
// when it starts (so logs and the error counter see one event), once more
// only for a different failure, and its end is reported as FileReadable.
func TestWatcherMissingFileReportedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenants.json")
	writeTenants(t, path, 0, 1, "")
	var reports []error
	recovered := 0
	w := &Watcher{Path: path, Apply: func([]Config) error { return nil },
		Report: func(e FileEvent) {
			if e.Kind == FileReadable {
				recovered++
				return
			}
			if e.Kind != FileUnreadable {
				t.Errorf("event %d for a missing file", e.Kind)
			}
			reports = append(reports, e.Err)
		}}
	data, _ := os.ReadFile(path)
	_, v, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w.Seed(v)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		w.Check()
	}
	if len(reports) != 1 || reports[0] == nil || !strings.Contains(reports[0].Error(), "no such file") {
		t.Fatalf("missing file: reports %v, want one", reports)
	}
	// Back with the same content: no reload, one recovery.
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, v.ModTime, v.ModTime); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		w.Check()
	}
	if len(reports) != 1 || recovered != 1 {
		t.Fatalf("after restore: reports %v, recovered %d", reports, recovered)
	}
	// A second outage is a new failure.
	_ = os.Remove(path)
	w.Check()
	w.Check()
	if len(reports) != 2 {
		t.Fatalf("second outage: reports %v", reports)
	}
}
