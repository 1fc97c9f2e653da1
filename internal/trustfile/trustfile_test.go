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
