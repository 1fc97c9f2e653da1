package gateway

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/reason"
	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/session"
	"github.com/embedgate/embedgate/internal/tenant"
)

type countingObserver struct {
	NopObserver
	exchanges []reason.Reason
}

func (o *countingObserver) Exchange(_ string, why reason.Reason) {
	o.exchanges = append(o.exchanges, why)
}

// An exchange error that carries no typed reason (a bug or an internal
// failure) is still a failure: it is counted and logged with a reason on
// every exchange path, never as result="ok" (reason "").
func TestUntypedExchangeErrorNeverCountedAsSuccess(t *testing.T) {
	reg, err := tenant.NewRegistry([]tenant.Config{{ID: "acme", Keys: []tenant.SecretConfig{{Secret: "acme-secret-0123456789abcdef0123456"}}}})
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := session.NewSealer("__Host-s", [][]byte{[]byte("seal-secret-0123456789abcdef01234")})
	if err != nil {
		t.Fatal(err)
	}
	mem := replay.NewMemory(time.Now)
	defer mem.Close()
	obs := &countingObserver{}
	var events []Event
	g, err := New(Config{Tenants: func() *tenant.Registry { return reg }, Sealer: sealer, Replay: mem, Revocations: mem,
		CookieName: "__Host-s", Prefix: "/.embed", TokenParam: "embed_token", Observer: obs,
		Audit: func(_ *http.Request, e Event) { events = append(events, e) }})
	if err != nil {
		t.Fatal(err)
	}
	untyped := errors.New("session: sealing failed")
	r := httptest.NewRequest("GET", "https://portal.test/deals?embed_token=x", nil)
	g.denyToken(httptest.NewRecorder(), r, nil, nil, untyped)
	g.refuse(httptest.NewRecorder(), r, nil, nil, untyped)
	for i, why := range obs.exchanges {
		if why == "" {
			t.Fatalf("exchange #%d counted as a success", i+1)
		}
	}
	if len(obs.exchanges) != 2 || len(events) != 2 {
		t.Fatalf("counted %d, logged %d, want 2 each", len(obs.exchanges), len(events))
	}
	for _, e := range events {
		if e.Reason == "" || e.Detail != untyped.Error() {
			t.Fatalf("audit event %+v", e)
		}
	}
}
