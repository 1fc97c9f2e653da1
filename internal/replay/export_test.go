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
	m.sessions.Range(func(any, any) bool { sessions++; return true })
	return m.used.len(), sessions, len(*m.cutoffs.Load())
}

// NewMemoryEvery is NewMemory with a janitor interval of every.
func NewMemoryEvery(now func() time.Time, every time.Duration) *Memory {
	m := newMemory(now)
	go m.janitor(every)
	return m
}

// SweepByClock deletes the replay entries whose expiry by m's injected
// clock has passed, as the janitor's sweep does.
func (m *Memory) SweepByClock() { m.used.sweep(m.now().UnixNano()) }

// sizes reports the number of entries, for tests.
func (m *mirror) sizes() (sessions, cutoffs int) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.sessions), len(m.cutoffs)
}

// SetRecoverQuiet shortens the quiet interval that ends an outage, so
// tests need not wait the default out.
func (r *Redis) SetRecoverQuiet(d time.Duration) {
	r.health.mu.Lock()
	defer r.health.mu.Unlock()
	r.health.quiet = d
}

// len is the number of entries stored, expired or not.
func (t *usedTable) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// SetRewriteWindow sets how long r writes its own recent revocations
// again after a master change (0: never), so that a test sees what the
// unwritten ones alone get written by.
func (r *Redis) SetRewriteWindow(d time.Duration) {
	r.recentMu.Lock()
	defer r.recentMu.Unlock()
	r.rewriteWindow = d
}
