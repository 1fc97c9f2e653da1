package gateway

import (
	"testing"

	"github.com/embedgate/embedgate/internal/reason"
)

// Every typed reason has its answer: a reason added without a row fails here.
func TestEveryReasonHasAnAnswer(t *testing.T) {
	for _, why := range reason.All() {
		if _, ok := statuses[why]; !ok {
			t.Errorf("reason %q has no row in statuses", why)
		}
	}
	if len(statuses) != len(reason.All()) {
		t.Errorf("statuses has %d rows for %d reasons", len(statuses), len(reason.All()))
	}
}
