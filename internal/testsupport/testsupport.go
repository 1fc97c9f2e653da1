// Package testsupport is the scaffolding the test suites share: a fake
// clock, a token minter, a free loopback port and a log buffer. It is
// imported only by _test.go files (and by test harnesses such as
// replaytest); it is a non-test package so that every package's tests can
// import it. It imports no Caddy code.
//
// The tests of internal/token and internal/tenant cannot import it: it
// builds on internal/token, which imports internal/tenant.
package testsupport

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"
)

// Clock is a fake time source that tests move by hand, so that nothing waits
// for real time to pass. It is safe for concurrent use: janitors and
// background refreshes read it while the test advances it.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock is a clock that reads start until it is moved.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now is the clock's current time; pass c.Now where a func() time.Time is
// injected.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d (backward when d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// FreePort returns a loopback TCP port that was free a moment ago, for a
// server the test starts as a separate process (which cannot be handed a
// listener). It never returns the same port twice in one test binary: the
// kernel may hand a just-closed port out again, and two roles given one
// port (an HTTP and an HTTPS port, say) make a server that silently serves
// the wrong one.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		portsMu.Lock()
		seen := portsGiven[port]
		portsGiven[port] = true
		portsMu.Unlock()
		if !seen {
			return port
		}
	}
	t.Fatal("no loopback port that was not handed out before")
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// LogBuffer collects a process's or a logger's output, written from other
// goroutines while the test reads it, for assertions and failure messages.
// The zero value is ready to use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written since the last Reset.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Reset forgets everything written so far.
func (l *LogBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}
