package tenant

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/embedgate/embedgate/internal/strictjson"
	"github.com/embedgate/embedgate/internal/trustfile"
)

// maxFileSize bounds a tenants file: 10,000 tenants take about 4 MiB.
const maxFileSize = 64 << 20

// ParseFile decodes a tenants file strictly: an unknown field, a name in
// another case or given twice, trailing data or a missing "tenants" array
// is an error, so a typo never silently drops a setting.
func ParseFile(data []byte) ([]Config, error) {
	var f struct {
		Tenants *[]Config `json:"tenants"`
	}
	// Names exactly as documented, each once: encoding/json would take
	// "Frame_Ancestors" after "frame_ancestors" and keep the last.
	switch err := strictjson.Decode(data, &f, false); {
	case errors.Is(err, strictjson.ErrTrailingData):
		return nil, fmt.Errorf("tenants file: trailing data after the JSON object")
	case err != nil:
		return nil, fmt.Errorf("tenants file: %w", err)
	}
	if f.Tenants == nil {
		return nil, fmt.Errorf(`tenants file: missing "tenants" array`)
	}
	return *f.Tenants, nil
}

// Version identifies the content of a tenants file as it was read: the
// hash of the bytes, and the size and mtime stat reported before reading
// them. A write that lands after the stat moves the size or mtime past
// these, so a watcher seeded with them still sees it.
type Version struct {
	Sum     [32]byte
	Size    int64
	ModTime time.Time
}

// ReadFile reads and parses a tenants file, returning the Version it read so
// a watcher can tell real changes from touches. The stat is taken on the
// open file before its bytes are read: a file renamed over it afterwards, or
// written in place, differs from that stat on the watcher's next look.
func ReadFile(path string) ([]Config, Version, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Version{}, fmt.Errorf("tenants file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, Version{}, fmt.Errorf("tenants file: %w", err)
	}
	// Not read at all, so a watcher tries again once the mode is fixed
	// (a chmod moves neither size nor mtime).
	if err := trustfile.Check(path, fi); err != nil {
		return nil, Version{}, fmt.Errorf("tenants file: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, Version{}, fmt.Errorf("tenants file: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, Version{}, fmt.Errorf("tenants file: larger than %d MiB", maxFileSize>>20)
	}
	v := Version{Sum: sha256.Sum256(data), Size: fi.Size(), ModTime: fi.ModTime()}
	cfgs, err := ParseFile(data)
	return cfgs, v, err
}

// Watcher polls a tenants file and hands each new content to Apply. Polling
// (stat, then a hash when size or mtime moved) works on every filesystem,
// including the bind mounts and ConfigMaps where inotify misses renames.
type Watcher struct {
	Path     string
	Interval time.Duration // default 500ms, so a change applies within 1s
	// Apply builds and swaps in a registry. An error leaves the previous
	// one in force; the watcher reports it and applies the same content
	// again, after 1s and then twice as long each time up to a minute,
	// until it applies or the file changes: what the file names besides
	// itself (a {file.*} secret, a public key file) may arrive after it. A
	// touch brings the retry forward to a second after the last one and
	// starts the backoff again. Every refusal is retried, even one only a
	// new version can fix (a duplicate id): the watcher cannot tell them
	// apart, and one rebuild a minute is cheap. A touch of a version in
	// force applies it again too, at most once a second: a key file it
	// names may have been replaced in place (a key revoked).
	Apply func(cfgs []Config) error
	// Report is told of each distinct outcome (see FileEventKind): a file
	// that cannot be read is reported once when that starts, not on every
	// poll while it lasts. Optional.
	Report func(FileEvent)
	// Now is the clock of the retries; default time.Now.
	Now func() time.Time

	last    [32]byte
	size    int64
	modTime time.Time
	failing string // the read error reported last, "" when none

	// A version in the file that Apply refused, while it is the file's
	// content: retrying says whether there is one.
	retrying  bool
	pending   []Config
	retryWait time.Duration // the wait before retryAt
	retryAt   time.Time     // when pending is applied again
	lastTry   time.Time     // when pending was last applied
	touched   bool          // the file was touched since: the backoff starts again
	refused   string        // the Apply error reported last for pending
	lastApply time.Time     // when Apply last ran, for any version
}

// The backoff of a version Apply refused: a version that can never apply
// (a duplicate tenant id) costs one rebuild a minute.
const (
	firstRetry = time.Second
	maxRetry   = time.Minute
)

// Seed records the version already applied at start (as ReadFile returned
// it), so the first tick does not reload it. Seed does not stat the file
// itself: a write between that read and Seed would be recorded as seen and
// never applied.
func (w *Watcher) Seed(v Version) {
	w.last, w.size, w.modTime = v.Sum, v.Size, v.ModTime
}

// Run polls until ctx is done.
func (w *Watcher) Run(ctx context.Context) {
	interval := w.Interval
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ctx.Err() != nil {
				// Both were ready: a check now would rebuild for a config
				// being unloaded, and report its refusal.
				return
			}
			w.Check()
		}
	}
}

// Check looks at the file once and applies it when its content changed.
func (w *Watcher) Check() {
	fi, err := os.Stat(w.Path)
	if err == nil {
		// On every poll: a chmod moves neither size nor mtime, and a file
		// others may write is to be reported as soon as it is one.
		err = trustfile.Check(w.Path, fi)
	}
	if err != nil {
		w.readFailed(fmt.Errorf("tenants file: %w", err))
		return
	}
	if fi.Size() == w.size && fi.ModTime().Equal(w.modTime) {
		w.readable()
		w.retryIfDue()
		return
	}
	// fi was taken before ReadFile reads, so a write racing this check
	// leaves the recorded stat behind the file and is seen next tick.
	cfgs, v, err := ReadFile(w.Path)
	if v == (Version{}) {
		// Not read at all (opened or read failed): nothing to remember, so
		// the next tick tries again.
		w.readFailed(err)
		return
	}
	if v.Sum == w.last {
		w.size, w.modTime = fi.Size(), fi.ModTime()
		w.readable()
		if !w.retrying && err == nil {
			// Touched, same content, in force: applied again (so the key
			// files it names are read again: one replaced in place to
			// revoke a key), a second after the last apply at the soonest.
			w.retrying, w.pending, w.touched = true, cfgs, true
			w.retryAt = w.lastApply.Add(firstRetry)
		} else if w.retrying {
			// Touched, same content: someone may just have added the key
			// file it names, so retry soon rather than after the wait; not
			// sooner than a second after the last try, however often it
			// is touched.
			w.touched = true
			if soon := w.lastTry.Add(firstRetry); soon.Before(w.retryAt) {
				w.retryAt = soon
			}
		}
		w.retryIfDue()
		return
	}
	// Remember this content even when it is refused, so a bad file is
	// reported once, not on every tick until someone fixes it.
	w.last, w.size, w.modTime = v.Sum, fi.Size(), fi.ModTime()
	w.failing = ""
	w.stopRetrying()
	if err != nil {
		// The content itself is bad: only a new version can fix it.
		w.report(FileEvent{Kind: FileRefused, Err: err})
		return
	}
	w.apply(cfgs, true)
}

// apply hands cfgs, a new version (fresh) or one refused before, to Apply.
// A refusal keeps cfgs for a retry with backoff; a retry refused for the
// reason already reported is not reported again.
func (w *Watcher) apply(cfgs []Config, fresh bool) {
	w.lastApply = w.now()
	err := w.Apply(cfgs)
	if err == nil {
		w.stopRetrying()
		w.report(FileEvent{Kind: FileApplied})
		return
	}
	if fresh || w.touched {
		w.retryWait = firstRetry
	} else {
		w.retryWait = min(2*w.retryWait, maxRetry)
	}
	now := w.now()
	w.retrying, w.pending, w.lastTry, w.retryAt, w.touched = true, cfgs, now, now.Add(w.retryWait), false
	if msg := err.Error(); fresh || msg != w.refused {
		w.refused = msg
		w.report(FileEvent{Kind: FileRefused, Err: err, Retry: w.retryWait})
	}
}

// retryIfDue applies the refused version again once its wait is over.
func (w *Watcher) retryIfDue() {
	if w.retrying && !w.now().Before(w.retryAt) {
		w.apply(w.pending, false)
	}
}

// stopRetrying forgets the refused version: it applied, or the file moved on.
func (w *Watcher) stopRetrying() {
	w.retrying, w.pending, w.touched, w.refused = false, nil, false, ""
	w.retryWait, w.retryAt, w.lastTry = 0, time.Time{}, time.Time{}
}

func (w *Watcher) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// readFailed reports a read error when it differs from the one in progress.
func (w *Watcher) readFailed(err error) {
	if msg := err.Error(); msg != w.failing {
		w.failing = msg
		w.report(FileEvent{Kind: FileUnreadable, Err: err})
	}
}

// readable ends a read failure in progress: the file is back, unchanged.
func (w *Watcher) readable() {
	if w.failing == "" {
		return
	}
	w.failing = ""
	w.report(FileEvent{Kind: FileReadable})
}

func (w *Watcher) report(e FileEvent) {
	if w.Report != nil {
		w.Report(e)
	}
}

// FileEventKind names what a Watcher saw.
type FileEventKind int

// What a Watcher reports.
const (
	// FileApplied: a new version of the file is in force.
	FileApplied FileEventKind = iota + 1
	// FileRefused: a new version was refused (Event.Err); the previous
	// tenants stay in force. A version Apply refused is applied again after
	// Event.Retry; one that does not parse is not (Retry is 0).
	FileRefused
	// FileUnreadable: the file cannot be read (Event.Err); the tenants in
	// force stay.
	FileUnreadable
	// FileReadable: the file can be read again, unchanged since it was
	// last read.
	FileReadable
)

// FileEvent is one outcome of a Watcher.
type FileEvent struct {
	Kind FileEventKind
	Err  error // for FileRefused and FileUnreadable
	// Retry is, for FileRefused, the wait before the version is applied
	// again; 0 when it does not parse.
	Retry time.Duration
}
