package session

import (
	"errors"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/reason"
)

// t0 is a fixed instant: tests pass time in, never read the clock.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// wantReason fails unless err is a *reason.Error carrying r.
func wantReason(t *testing.T, err error, r reason.Reason) *reason.Error {
	t.Helper()
	var e *reason.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *reason.Error with %q", err, err, r)
	}
	if e.Reason != r {
		t.Fatalf("reason = %q (%v), want %q", e.Reason, err, r)
	}
	return e
}

func TestCheck(t *testing.T) {
	const idle = 30 * time.Minute
	s := &Session{LastSeen: t0, ExpiresAt: t0.Add(8 * time.Hour)}
	tests := []struct {
		name string
		now  time.Time
		idle time.Duration
		want reason.Reason // "" = valid
	}{
		{"fresh", t0, idle, ""},
		{"idle: one second before", t0.Add(idle - time.Second), idle, ""},
		{"idle: exactly at", t0.Add(idle), idle, reason.SessionIdle},
		{"idle: after", t0.Add(idle + time.Second), idle, reason.SessionIdle},
		{"idle disabled (0)", t0.Add(7 * time.Hour), 0, ""},
		{"idle disabled (negative)", t0.Add(7 * time.Hour), -time.Minute, ""},
		{"expiry: one second before", t0.Add(8*time.Hour - time.Second), 0, ""},
		{"expiry: exactly at", t0.Add(8 * time.Hour), 0, reason.SessionExpired},
		{"expiry: after", t0.Add(9 * time.Hour), 0, reason.SessionExpired},
		{"expired and idle: absolute wins", t0.Add(8 * time.Hour), idle, reason.SessionExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Check(tt.now, tt.idle)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			wantReason(t, err, tt.want)
		})
	}
}

func TestCheckZeroExpiryFailsClosed(t *testing.T) {
	wantReason(t, (&Session{LastSeen: t0}).Check(t0, 0), reason.SessionExpired)
}

func TestNeedsRefresh(t *testing.T) {
	const idle = 30 * time.Minute
	s := &Session{LastSeen: t0, ExpiresAt: t0.Add(8 * time.Hour)}
	tests := []struct {
		name string
		now  time.Time
		idle time.Duration
		want bool
	}{
		{"just seen", t0, idle, false},
		{"one second before half", t0.Add(idle/2 - time.Second), idle, false},
		{"exactly half", t0.Add(idle / 2), idle, false},
		{"one second past half", t0.Add(idle/2 + time.Second), idle, true},
		{"idle disabled", t0.Add(7 * time.Hour), 0, false},
		{"negative idle", t0.Add(7 * time.Hour), -idle, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.NeedsRefresh(tt.now, tt.idle); got != tt.want {
				t.Fatalf("NeedsRefresh = %v, want %v", got, tt.want)
			}
		})
	}
}
