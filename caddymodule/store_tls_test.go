package caddymodule

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap/zapcore"

	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/replay/replaytest"
)

func TestUnmarshalStoreReplicasAndTLS(t *testing.T) {
	tests := []struct {
		name, input, want, wantErr string
	}{
		{
			name: "replicas and tls",
			input: `store redis rediss://redis:6380 {
				replicas 1
				tls {
					ca /etc/ca.pem
					cert /etc/client.pem
					key /etc/client-key.pem
					server_name redis.internal
				}
			}`,
			want: `{"type":"redis","url":"rediss://redis:6380","replicas":1,"tls":{"ca":"/etc/ca.pem","cert":"/etc/client.pem","key":"/etc/client-key.pem","server_name":"redis.internal"}}`,
		},
		{name: "replicas 0 stays out", input: "store redis redis://r {\n replicas 0\n}", want: `{"type":"redis","url":"redis://r"}`},
		{name: "negative replicas", input: "store redis redis://r {\n replicas -1\n}", wantErr: "replicas \"-1\""},
		{name: "replicas without value", input: "store redis redis://r {\n replicas\n}", wantErr: "replicas takes exactly one argument"},
		{name: "tls with an argument", input: "store redis rediss://r {\n tls on\n}", wantErr: "tls takes a block"},
		{name: "empty tls", input: "store redis rediss://r {\n tls {\n }\n}", wantErr: "tls needs at least one"},
		{name: "tls twice the same", input: "store redis rediss://r {\n tls {\n ca a\n ca b\n }\n}", wantErr: "ca given twice"},
		{name: "tls unknown", input: "store redis rediss://r {\n tls {\n insecure\n }\n}", wantErr: `tls: unrecognized subdirective "insecure"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("embed_session {\n" + tt.input + "\n}"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(h.Store)
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// Bad TLS or replicas settings fail at Provision, before any network I/O
// (the URL points nowhere that answers), with a message naming the field.
func TestStorePlanTLSAndReplicas(t *testing.T) {
	files := replaytest.NewTLSFiles(t)
	const nowhere = "rediss://:hunter2@192.0.2.1:6380"
	for _, c := range []struct {
		cfg  StoreConfig
		want string
	}{
		{StoreConfig{Type: "redis", URL: nowhere, TLS: &StoreTLS{Cert: files.ClientCert}}, "cert and key go together"},
		{StoreConfig{Type: "redis", URL: nowhere, TLS: &StoreTLS{CA: "/nonexistent/ca.pem"}}, "tls: ca: open /nonexistent/ca.pem"},
		{StoreConfig{Type: "redis", URL: nowhere, TLS: &StoreTLS{CA: files.ClientKey}}, "no PEM certificate"},
		{StoreConfig{Type: "redis", URL: nowhere, TLS: &StoreTLS{Cert: files.ClientCert, Key: files.ServerKey}}, "does not match"},
		{StoreConfig{Type: "redis", URL: nowhere, TLS: &StoreTLS{CA: "{env.EG_TEST_UNSET_DIR}/ca.pem"}}, "tls ca"},
		{StoreConfig{Type: "redis", URL: "redis://192.0.2.1:6379", TLS: &StoreTLS{CA: files.CA}}, "tls needs a rediss://"},
		{StoreConfig{Type: "redis", URL: nowhere, Replicas: 17}, "replicas 17: want 0 to 16"},
		{StoreConfig{Type: "memory", Replicas: 1}, "apply to store redis only"},
		{StoreConfig{Type: "memory", TLS: &StoreTLS{CA: files.CA}}, "apply to store redis only"},
	} {
		h := &Handler{Store: &c.cfg}
		began := time.Now()
		_, _, err := h.storePlan()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error repeats the password: %v", err)
		}
		if took := time.Since(began); took > 100*time.Millisecond {
			t.Errorf("%+v: took %v: network I/O before the error?", c.cfg, took)
		}
	}
}

// The pool key follows the TLS files' contents: a reload after a renewed
// CA file builds a new client; an unchanged config reuses the old one.
func TestStorePlanKeyFollowsTLSFiles(t *testing.T) {
	files := replaytest.NewTLSFiles(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	copyFile(t, files.CA, ca)
	h := &Handler{Store: &StoreConfig{Type: "redis", URL: "rediss://r:6380", Replicas: 1, TLS: &StoreTLS{CA: ca}}}
	k1, rc, err := h.storePlan()
	if err != nil {
		t.Fatal(err)
	}
	if rc.TLS == nil || rc.TLS.RootCAs == nil || rc.Replicas != 1 {
		t.Fatalf("resolved config %+v", rc)
	}
	k2, _, _ := h.storePlan()
	copyFile(t, files.OtherCA, ca)
	k3, _, _ := h.storePlan()
	if k1 != k2 || k1 == k3 {
		t.Fatal("the pool key does not follow the CA file's contents")
	}
	h.Store.Replicas = 0
	if k4, _, _ := h.storePlan(); k4 == k3 {
		t.Fatal("the pool key ignores replicas")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A store provisioned with the tls block talks to a server that requires
// a client certificate.
func TestProvisionRedisStoreTLS(t *testing.T) {
	files := replaytest.NewTLSFiles(t)
	srv := replaytest.StartRedisWith(t, replaytest.RedisOptions{TLS: files})
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{SessionTTL: caddy.Duration(time.Hour), Store: &StoreConfig{Type: "redis", URL: srv.URL(), KeyPrefix: "tls-test:",
		TLS: &StoreTLS{CA: files.CA, Cert: files.ClientCert, Key: files.ClientKey, ServerName: replaytest.ServerName}}}
	store, _, err := h.provisionStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Cleanup() }()
	if err := store.Claim(context.Background(), "acme", "jti-tls", time.Minute); err != nil {
		t.Fatalf("claim over TLS: %v", err)
	}
}

// Every store event has its own message and a deliberate level.
func TestStoreEventLevels(t *testing.T) {
	want := map[replay.EventKind]zapcore.Level{
		replay.EventNotLoaded: zapcore.ErrorLevel, replay.EventUnavailable: zapcore.ErrorLevel,
		replay.EventRecovered: zapcore.InfoLevel, replay.EventSubscriptionLost: zapcore.WarnLevel,
		replay.EventLoaded: zapcore.InfoLevel, replay.EventResynced: zapcore.InfoLevel,
		replay.EventMalformedAnnouncement: zapcore.WarnLevel, replay.EventMalformedKeys: zapcore.WarnLevel,
		replay.EventPolicyUnknown: zapcore.WarnLevel, replay.EventPolicyEvicts: zapcore.WarnLevel,
		replay.EventSubscriptionStale: zapcore.WarnLevel, replay.EventMasterSwitched: zapcore.WarnLevel,
		replay.EventResyncIncomplete: zapcore.ErrorLevel, replay.EventRewritten: zapcore.InfoLevel,
		replay.EventClaimsNotReturned: zapcore.WarnLevel, replay.EventGapClosed: zapcore.ErrorLevel,
		replay.EventUnwrittenDropped: zapcore.ErrorLevel, replay.EventRestored: zapcore.WarnLevel,
	}
	for k := replay.EventNotLoaded; k <= replay.EventRestored; k++ {
		lvl, ok := want[k]
		if !ok {
			t.Errorf("event kind %d: no level decided in this test", k)
			continue
		}
		if got := storeEventLevel(k); got != lvl {
			t.Errorf("%s: level %v, want %v", replay.Event{Kind: k}.Message(), got, lvl)
		}
		if (replay.Event{Kind: k}).Message() == "redis store event" {
			t.Errorf("event kind %d has no message", k)
		}
	}
}
