package replay

import "time"

// Hooks for the external tests in memory_test.go, which cannot live in
// package replay because replaytest imports replay.

// Done is closed when m's janitor goroutine has ended.
func (m *Memory) Done() <-chan struct{} { return m.done }

// Sweep runs one janitor pass now.
func (m *Memory) Sweep() { m.sweep() }

// Sizes reports the number of stored replay entries, revoked session ids and
// RevokeAll cutoffs, expired or not.
func (m *Memory) Sizes() (used, sessions, cutoffs int) {
	m.cutMu.RLock()
	defer m.cutMu.RUnlock()
	return m.used.ItemCount(), m.sessions.ItemCount(), len(m.cutoffs)
}

// NewMemoryEvery is NewMemory with a janitor interval of every.
func NewMemoryEvery(now func() time.Time, every time.Duration) *Memory {
	m := newMemory(now)
	go m.janitor(every)
	return m
}
