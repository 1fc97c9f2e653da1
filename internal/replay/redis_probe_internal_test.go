package replay

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// After a failover the mirror is loaded again once the first probe comes
// back. That load failing was stored for EventNotLoaded and retried, but
// never reported: the log and the events showed the mirror as resynced
// while revocations written on the new master were missing from it. A
// failure is now EventResyncIncomplete, once; a second probe of the same
// subscription loads nothing, and a failure while one is already in
// progress reports nothing. (The load succeeding is
// TestRedisReloadWhenPoolCatchesUp, against real servers.)
func TestReloadAfterProbeReportsFailure(t *testing.T) {
	// A loopback port nobody listens on: every command fails to connect.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	client := redis.NewClient(&redis.Options{Addr: dead, MaxRetries: -1, DialTimeout: time.Second})
	defer client.Close()
	var events []Event
	r := &Redis{client: client, prefix: "eg:", mirror: newMirror(time.Now), now: time.Now, report: func(e Event) { events = append(events, e) }}
	ctx := context.Background()

	if !r.reloadOnceProbeReturned(ctx, &prober{}, false) || len(events) != 0 {
		t.Fatalf("no probe back yet: a load was tried (events %+v)", events)
	}
	p := &prober{returned: true}
	if r.reloadOnceProbeReturned(ctx, p, false) {
		t.Fatal("load against a dead server reported complete")
	}
	if len(events) != 1 || events[0].Kind != EventResyncIncomplete || events[0].Err == nil || r.lastErr.Load() == nil {
		t.Fatalf("failed load: events %+v, want one EventResyncIncomplete with its error", events)
	}
	if !r.reloadOnceProbeReturned(ctx, p, false) || len(events) != 1 {
		t.Fatalf("a second probe of the same subscription loaded again (events %+v)", events)
	}
	if r.reloadOnceProbeReturned(ctx, &prober{returned: true}, true) || len(events) != 1 {
		t.Fatalf("quiet failure: events %+v, want none added", events)
	}
}
