package tenant

// HasTokenAPI reports whether the tenant lists api_keys (tests that a
// backend's api_keys reach the tenant).
func (t *Tenant) HasTokenAPI() bool { return len(t.apiKeys) > 0 }
