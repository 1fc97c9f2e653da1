package gateway

import (
	"strings"
	"testing"
)

// A tenants file may hold thousands of tenants: an unknown_tenant verdict
// names the first 20.
func TestQuoteListCapped(t *testing.T) {
	ids := make([]string, 25)
	for i := range ids {
		ids[i] = "t" + strings.Repeat("x", i%2)
	}
	if got := quoteList(ids); !strings.HasSuffix(got, `"t", "tx", and 5 more`) || strings.Count(got, `"`) != 40 {
		t.Fatalf("quoteList: %s", got)
	}
	if got := quoteList([]string{"a", "b"}); got != `"a", "b"` {
		t.Fatalf("quoteList: %s", got)
	}
}
