package trustfile

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func write(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// Chmod, not WriteFile's mode: the umask would clear o+w.
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadAcceptsOwnerAndGroupWritable(t *testing.T) {
	for _, mode := range []os.FileMode{0o600, 0o644, 0o664, 0o400} {
		p := write(t, "k.pem", "secret-material", mode)
		got, err := Read(p, MaxKeyFile)
		if err != nil || string(got) != "secret-material" {
			t.Errorf("mode %04o: Read = %q, %v; want the content", mode, got, err)
		}
	}
}

// A file any local user may write would let that user swap in their own
// key or tenant and mint identities the gateway then trusts.
func TestReadRefusesWritableByOthers(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("mode bits say nothing on Windows")
	}
	for _, mode := range []os.FileMode{0o666, 0o602, 0o777} {
		p := write(t, "tenants.json", "secret-material", mode)
		got, err := Read(p, MaxKeyFile)
		if !errors.Is(err, ErrWritableByOthers) || got != nil {
			t.Fatalf("mode %04o: Read = %q, %v; want ErrWritableByOthers and nothing read", mode, got, err)
		}
		var me *ModeError
		if !errors.As(err, &me) || me.Path != p {
			t.Fatalf("mode %04o: error %v is not a *ModeError for %s", mode, err, p)
		}
		msg := err.Error()
		if !strings.Contains(msg, p) || !strings.Contains(msg, "chmod o-w") || strings.Contains(msg, "secret-material") {
			t.Errorf("mode %04o: message %q should name the file and the fix, and never the content", mode, msg)
		}
	}
}

// The mode checked is the target's: a safe-looking symlink must not hide a
// file others can write.
func TestReadChecksTheSymlinkTarget(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("mode bits say nothing on Windows")
	}
	target := write(t, "real.pem", "x", 0o646)
	link := filepath.Join(t.TempDir(), "link.pem")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(link, MaxKeyFile); !errors.Is(err, ErrWritableByOthers) {
		t.Fatalf("Read through a symlink = %v; want ErrWritableByOthers", err)
	}
}

func TestReadRefusesOverLimit(t *testing.T) {
	p := write(t, "big", strings.Repeat("a", 11), 0o600)
	if _, err := Read(p, 11); err != nil {
		t.Fatalf("Read at the limit = %v", err)
	}
	_, err := Read(p, 10)
	if err == nil || !strings.Contains(err.Error(), "larger than 10 bytes") {
		t.Fatalf("Read over the limit = %v; want a size error, not a cut file", err)
	}
}

func TestReadMissing(t *testing.T) {
	_, err := Read(filepath.Join(t.TempDir(), "none"), MaxKeyFile)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Read of a missing file = %v; want fs.ErrNotExist", err)
	}
}

// A Kubernetes ConfigMap or Secret file is a symlink to a 0644 file: it is
// read, whatever the link's own 0777 says.
func TestReadFollowsASymlinkToASafeFile(t *testing.T) {
	target := write(t, "real.pem", "key", 0o600)
	link := filepath.Join(t.TempDir(), "link.pem")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(link, MaxKeyFile); err != nil || string(got) != "key" {
		t.Fatalf("Read through a symlink to a 0600 file = %q, %v; want the content", got, err)
	}
}

// Attack: in a directory other users may write, anyone can rename their own
// 0600 file over the trusted one; so can they in any directory above it.
// A sticky directory (as /tmp) lets them replace only their own files.
func TestReadRefusesAReplaceableFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("mode bits say nothing on Windows")
	}
	mkdir := func(parent string, mode os.FileMode) string {
		t.Helper()
		d, err := os.MkdirTemp(parent, "d")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		return d
	}
	put := func(dir string) string {
		t.Helper()
		p := filepath.Join(dir, "tenants.json")
		if err := os.WriteFile(p, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := t.TempDir()
	open := mkdir(base, 0o777)
	for name, p := range map[string]string{
		"in a 0777 directory": put(open),
		"below one":           put(mkdir(open, 0o755)),
	} {
		_, err := Read(p, MaxKeyFile)
		var me *ModeError
		if !errors.As(err, &me) || !me.Dir || me.Path != open || !errors.Is(err, ErrWritableByOthers) {
			t.Errorf("%s: Read = %v; want a directory ModeError for %s", name, err, open)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, open) || !strings.Contains(msg, p) || !strings.Contains(msg, "sticky") {
			t.Errorf("%s: message %q should name the directory, the file and the sticky bit", name, msg)
		}
	}
	sticky := mkdir(base, 0o777|os.ModeSticky)
	if _, err := Read(put(sticky), MaxKeyFile); err != nil {
		t.Errorf("in a sticky 1777 directory: %v; want accepted", err)
	}
	// The directories are the resolved file's: a link kept in an open
	// directory to a file in a safe one is the ConfigMap layout.
	safe := put(mkdir(base, 0o755))
	link := filepath.Join(sticky, "link.json")
	if err := os.Symlink(safe, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(link, MaxKeyFile); err != nil {
		t.Errorf("a link to a file in a 0755 directory: %v; want accepted", err)
	}
	// And a safe-looking link to a file in an open directory is refused.
	link2 := filepath.Join(mkdir(base, 0o755), "link.json")
	if err := os.Symlink(put(mkdir(open, 0o700)), link2); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(link2, MaxKeyFile); !errors.Is(err, ErrWritableByOthers) {
		t.Errorf("a link to a file below a 0777 directory: %v; want refused", err)
	}
}
