package jwks

import "time"

// Fetches is the number of fetch attempts so far (tests of the refresh
// limits).
func (c *Cache) Fetches() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetches
}

// NextRefresh is when the set is next due for a refresh (tests of the
// Cache-Control bounds).
func (c *Cache) NextRefresh() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next
}
