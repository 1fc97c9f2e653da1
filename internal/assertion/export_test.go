package assertion

// CacheLen is the number of assertions cached (tests of the bound).
func CacheLen(i *Issuer) int {
	n := 0
	for j := range i.cache.shards {
		sh := &i.cache.shards[j]
		sh.mu.Lock()
		n += len(sh.cur) + len(sh.old)
		sh.mu.Unlock()
	}
	return n
}
