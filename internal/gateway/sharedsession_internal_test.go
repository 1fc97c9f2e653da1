package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentRefreshLeavesTheSharedSession: many requests at once with
// one cookie old enough to be refreshed on each. The opened session is
// shared by all of them (the opened-cookie cache hands out its own), so a
// refresh that changed it instead of a copy would be a data race (-race in
// CI) and would move the old cookie's idle window. Checked too: the session
// cookie never reaches the app while the others do.
func TestConcurrentRefreshLeavesTheSharedSession(t *testing.T) {
	e := newBKEnv(t, false)
	v := e.cookie("https://app.acme.test", 20*time.Minute) // past idle/2: every request refreshes
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				r := httptest.NewRequest("GET", "https://portal.gate.test/deals", nil)
				r.Header.Set("Cookie", "a=1; "+v+"; b=2")
				w := httptest.NewRecorder()
				_ = e.g.ServeHTTP(w, r, func(w http.ResponseWriter, r *http.Request) error {
					if got := r.Header.Get("Cookie"); got != "a=1; b=2" {
						t.Errorf("the app got Cookie %q", got)
					}
					return nil
				})
				if w.Code != http.StatusOK || !strings.Contains(w.Header().Get("Set-Cookie"), bkCookie+"=") {
					t.Errorf("status %d, Set-Cookie %q: want 200 and a refreshed session", w.Code, w.Header().Get("Set-Cookie"))
					return
				}
			}
		})
	}
	wg.Wait()
	s, _, err := e.sealer.OpenClaims(strings.TrimPrefix(v, bkCookie+"="), "portal.gate.test")
	if err != nil {
		t.Fatal(err)
	}
	if want := e.now.Add(-20 * time.Minute); !s.LastSeen.Equal(want) {
		t.Fatalf("the shared session's LastSeen moved to %v, want %v", s.LastSeen, want)
	}
}
