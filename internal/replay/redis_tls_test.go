package replay_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/replay"
	"github.com/embedgate/embedgate/internal/replay/replaytest"
)

// Item 7: TLS with a private CA and a client certificate, for a server
// that requires one; item 6: a store that cannot connect says why, at start.
func TestRedisTLS(t *testing.T) {
	files := replaytest.NewTLSFiles(t)
	srv := replaytest.StartRedisWith(t, replaytest.RedisOptions{TLS: files})
	load := func(c replay.RedisTLS) *replay.Redis {
		t.Helper()
		cfg, _, err := c.Load()
		if err != nil {
			t.Fatal(err)
		}
		events := newEventLog()
		r, err := replay.NewRedis(context.Background(), replay.RedisConfig{URL: srv.URL(), TLS: cfg, KeyPrefix: uniquePrefix(),
			StartWait: 1500 * time.Millisecond, Report: events.report})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r
	}
	t.Run("CAAndClientCertificate", func(t *testing.T) {
		for _, name := range []string{"", replaytest.ServerName} {
			r := load(replay.RedisTLS{CAFile: files.CA, CertFile: files.ClientCert, KeyFile: files.ClientKey, ServerName: name})
			select {
			case <-r.Synced():
			case <-time.After(3 * time.Second):
				t.Fatalf("server_name %q: not loaded over TLS", name)
			}
			if err := r.Claim(context.Background(), "acme", "jti-tls-"+name, time.Minute); err != nil {
				t.Fatalf("server_name %q: claim: %v", name, err)
			}
		}
	})
	for _, c := range []struct {
		name string
		tls  replay.RedisTLS
		want []string // any of these in the cause
	}{
		{"UntrustedCA", replay.RedisTLS{CAFile: files.OtherCA, CertFile: files.ClientCert, KeyFile: files.ClientKey}, []string{"x509", "certificate"}},
		{"NoClientCertificate", replay.RedisTLS{CAFile: files.CA}, []string{"certificate", "EOF", "reset", "tls"}},
		{"WrongServerName", replay.RedisTLS{CAFile: files.CA, CertFile: files.ClientCert, KeyFile: files.ClientKey, ServerName: "other.test"}, []string{"other.test"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, _, err := c.tls.Load()
			if err != nil {
				t.Fatal(err)
			}
			events := newEventLog()
			r, err := replay.NewRedis(context.Background(), replay.RedisConfig{URL: srv.URL(), TLS: cfg, StartWait: 1500 * time.Millisecond, Report: events.report})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			e, ok := events.find(replay.EventNotLoaded)
			if !ok || e.Err == nil {
				t.Fatalf("no cause at start:\n%s", events)
			}
			found := false
			for _, w := range c.want {
				found = found || strings.Contains(e.Err.Error(), w)
			}
			if !found || strings.Contains(e.Err.Error(), "context deadline exceeded") {
				t.Fatalf("cause %q, want one of %q", e.Err, c.want)
			}
			t.Logf("logged cause: %v", e.Err)
		})
	}
}

func TestRedisTLSLoadErrors(t *testing.T) {
	files := replaytest.NewTLSFiles(t)
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tls  replay.RedisTLS
		want string
	}{
		{replay.RedisTLS{CertFile: files.ClientCert}, "cert and key go together"},
		{replay.RedisTLS{KeyFile: files.ClientKey}, "cert and key go together"},
		{replay.RedisTLS{CAFile: "/nonexistent/ca.pem"}, "tls: ca: open /nonexistent/ca.pem"},
		{replay.RedisTLS{CAFile: notPEM}, "no PEM certificate"},
		{replay.RedisTLS{CertFile: files.ClientCert, KeyFile: files.ServerKey}, "private key does not match"},
		{replay.RedisTLS{CertFile: files.ClientCert, KeyFile: "/nonexistent/key.pem"}, "tls: key: open"},
	} {
		_, _, err := c.tls.Load()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.tls, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("error shows key material: %v", err)
		}
	}
	_, d1, err := replay.RedisTLS{CAFile: files.CA}.Load()
	if err != nil {
		t.Fatal(err)
	}
	_, d2, _ := replay.RedisTLS{CAFile: files.OtherCA}.Load()
	if d1 == d2 {
		t.Fatal("different files, same digest")
	}
}

// A Cluster over TLS: rediss+cluster:// takes the same TLS settings, and
// skip_verify, which go-redis refuses on a Cluster URL.
func TestClusterTLS(t *testing.T) {
	files := replaytest.NewTLSFiles(t)
	c := replaytest.StartCluster(t, replaytest.ClusterOptions{TLS: files})
	cfg, _, err := replay.RedisTLS{CAFile: files.CA, CertFile: files.ClientCert, KeyFile: files.ClientKey}.Load()
	if err != nil {
		t.Fatal(err)
	}
	noCA, _, _ := replay.RedisTLS{CertFile: files.ClientCert, KeyFile: files.ClientKey}.Load()
	for name, rc := range map[string]replay.RedisConfig{
		"ca":          {URL: c.URL(), TLS: cfg},
		"skip_verify": {URL: c.URL() + "&skip_verify=true", TLS: noCA},
	} {
		rc.KeyPrefix = uniquePrefix()
		r := newRedis(t, rc)
		select {
		case <-r.Synced():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not loaded", name)
		}
		for _, jti := range []string{"a", "b", "c", "d", "e", "f"} {
			if err := r.Claim(context.Background(), "acme", jti, time.Minute); err != nil {
				t.Fatalf("%s: claim: %v", name, err)
			}
		}
	}
}
