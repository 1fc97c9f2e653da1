// Package trustfile reads the files whose content the gateway trusts: the
// tenants file, the keys that verify tokens or sign assertions, the secrets
// named by {file.*}, the certificates that authenticate Redis. Whoever can
// write one of them can make the gateway accept identities they mint, so a
// file that users other than its owner and group may write (mode o+w) is
// refused, and so is one in a directory (or below one) where they may
// replace it (o+w without the sticky bit), as sshd's StrictModes does for
// authorized_keys. Group-writable files are accepted: a deploy group that
// writes the tenants file is a common, deliberate setup. Owners are not
// checked: the user who deploys the file may well not be the gateway's.
//
// On Windows, Go reports every file that is not read-only as 0666 whoever
// may write it, so there the mode says nothing and is not checked.
package trustfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// ErrWritableByOthers is what a ModeError matches with errors.Is.
var ErrWritableByOthers = errors.New("trustfile: writable by other users")

// ModeError is a trusted file that other users may write.
// Dir, when set, is the directory at Path that lets them replace File.
type ModeError struct {
	Path string
	Mode fs.FileMode
	Dir  bool
	File string // the file read, when Dir
}

func (e *ModeError) Error() string {
	if e.Dir {
		return fmt.Sprintf("%s, a directory above %s, is writable by other users without the sticky bit (mode %04o): anyone on this host could replace what the gateway trusts; run chmod o-w on it",
			e.Path, e.File, uint32(e.Mode.Perm()))
	}
	return fmt.Sprintf("%s is writable by other users (mode %04o): anyone on this host could change what the gateway trusts; run chmod o-w on it",
		e.Path, uint32(e.Mode.Perm()))
}

// Is makes errors.Is(err, ErrWritableByOthers) true.
func (e *ModeError) Is(target error) bool { return target == ErrWritableByOthers }

// checksMode is false where mode bits do not say who may write a file.
var checksMode = runtime.GOOS != "windows"

// Check refuses fi, the stat of path as opened (the target of a symlink),
// when other users may write it, or replace it: every directory above the
// file path resolves to must be o-w or sticky (as /tmp is). The directories
// are those of the resolved path: a Kubernetes ConfigMap's file is a
// symlink into a timestamped directory, and it is that one which holds it.
func Check(path string, fi fs.FileInfo) error {
	if !checksMode {
		return nil
	}
	if fi.Mode().Perm()&0o002 != 0 {
		return &ModeError{Path: path, Mode: fi.Mode()}
	}
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	resolved, err = filepath.Abs(resolved)
	if err != nil {
		return err
	}
	for dir := filepath.Dir(resolved); ; dir = filepath.Dir(dir) {
		di, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if m := di.Mode(); m.Perm()&0o002 != 0 && m&fs.ModeSticky == 0 {
			return &ModeError{Path: dir, Mode: m, Dir: true, File: path}
		}
		if parent := filepath.Dir(dir); parent == dir {
			return nil
		}
	}
}

// Read returns the content of path, at most limit bytes, after Check on
// the file it opened: the stat and the bytes are of the same file, whatever
// is renamed over the path meanwhile. A longer file is an error, not
// truncated: a cut key or secret would only fail later and less clearly.
func Read(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := Check(path, fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// MaxKeyFile bounds a key, certificate or secret file: a PEM chain or a
// secret is a few KiB, and Caddy's own {file.*} stops at 1 MiB.
const MaxKeyFile = 1 << 20
