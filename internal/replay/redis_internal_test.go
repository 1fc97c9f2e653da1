package replay

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestNewRedisClientURLs(t *testing.T) {
	const secret = "s3cret-pw"
	tests := []struct {
		url     string
		kind    string // "client", "cluster" or "" for an error
		target  string
		db      int // the database the channel is named for
		wantErr string
	}{
		{url: "redis://:" + secret + "@127.0.0.1:6379/2", kind: "client", target: "redis://:xxxxx@127.0.0.1:6379/2", db: 2},
		{url: "rediss://app:" + secret + "@redis.internal:6380", kind: "client", target: "rediss://app:xxxxx@redis.internal:6380"},
		{url: "unix:///run/redis.sock?db=1", kind: "client", target: "unix:///run/redis.sock?db=1", db: 1},
		{url: "redis+sentinel://:" + secret + "@10.0.0.1:26379/0?master_name=mymaster&addr=10.0.0.2:26379", kind: "client"},
		{url: "redis+sentinel://10.0.0.1:26379/3?master_name=mymaster", kind: "client", db: 3},
		{url: "redis+cluster://10.0.0.1:7000?addr=10.0.0.2:7000", kind: "cluster", target: "redis+cluster://10.0.0.1:7000?addr=10.0.0.2%3A7000"},
		{url: "REDISS+CLUSTER://10.0.0.1:7000", kind: "cluster"},
		{url: "redis+sentinel://10.0.0.1:26379", wantErr: "master_name"},
		{url: "http://127.0.0.1:6379", wantErr: "scheme"},
		{url: "127.0.0.1:6379", wantErr: "want redis://"},
		{url: "redis://app:" + secret + "@host:notaport", wantErr: "redis url:"},
		{url: "redis://host/x", wantErr: "invalid database number"},
		{url: "redis://host?password=" + secret, wantErr: "redis url:"},
		{url: "rediss+cluster://10.0.0.1:7000?skip_verify=true&addr=10.0.0.2:7000", kind: "cluster"},
		{url: "rediss+sentinel://10.0.0.1:26379?master_name=m&skip_verify=true", kind: "client"},
		{url: "rediss://10.0.0.1:6380?skip_verify=1", kind: "client"},
		{url: "redis+cluster://10.0.0.1:7000?skip_verify=true", wantErr: "need a rediss://"},
		{url: "rediss://10.0.0.1:6380?skip_verify=maybe", wantErr: "skip_verify"},
	}
	for _, tt := range tests {
		spec, err := newRedisClient(tt.url, nil)
		c, target := spec.client, spec.target
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want %q", tt.url, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error repeats the password: %v", tt.url, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.url, err)
			continue
		}
		_, isCluster := c.(*redis.ClusterClient)
		if (tt.kind == "cluster") != isCluster {
			t.Errorf("%s: client %T, want %s", tt.url, c, tt.kind)
		}
		if strings.Contains(target, secret) {
			t.Errorf("%s: target %q shows the password", tt.url, target)
		}
		if tt.target != "" && target != tt.target {
			t.Errorf("%s: target %q, want %q", tt.url, target, tt.target)
		}
		if spec.db != tt.db {
			t.Errorf("%s: database %d, want %d", tt.url, spec.db, tt.db)
		}
		_ = c.Close()
	}
}

// Database 0 keeps the channel older versions use; any other database
// gets a channel of its own.
func TestRevocationChannel(t *testing.T) {
	for _, tt := range []struct {
		db   int
		want string
	}{{0, "embedgate:revocations"}, {1, "embedgate:revocations:db1"}, {15, "embedgate:revocations:db15"}} {
		if got := revocationChannel("embedgate:", tt.db); got != tt.want {
			t.Errorf("db %d: channel %q, want %q", tt.db, got, tt.want)
		}
	}
	// No prefix in one database reaches another's channel.
	seen := map[string]string{}
	for _, prefix := range []string{"embedgate:", "embedgate:db1:", "embedgate:revocations:db1", "e:", "e:revocations:db"} {
		for _, db := range []int{0, 1, 2, 10} {
			c, who := revocationChannel(prefix, db), fmt.Sprintf("%q in db %d", prefix, db)
			if other, ok := seen[c]; ok {
				t.Errorf("%s and %s share the channel %q", who, other, c)
			}
			seen[c] = who
		}
	}
}

func TestRedactURLQueryPassword(t *testing.T) {
	got := RedactURL("redis+sentinel://h:26379?master_name=m&password=hunter2&sentinel_password=pw2")
	if strings.Contains(got, "hunter2") || strings.Contains(got, "pw2") || !strings.Contains(got, "master_name=m") {
		t.Fatalf("RedactURL left a password: %s", got)
	}
}

func TestKeyEscaping(t *testing.T) {
	r := &Redis{prefix: "eg:"}
	for _, c := range []struct{ got, want string }{
		{r.jtiKey("acme", "j:1"), "eg:jti:acme:j:1"},
		{r.jtiKey("a:b", "c"), "eg:jti:a%3Ab:c"},
		{r.jtiKey("50%", "c"), "eg:jti:50%25:c"},
		{r.cutKey("acme", ""), "eg:rev:cut:acme:"},
		{r.cutKey("a:b", "jane"), "eg:rev:cut:a%3Ab:jane"},
		{r.sidKey("sid"), "eg:rev:sid:sid"},
		{globEscape("a*b?[c]\\"), `a\*b\?\[c\]\\`},
		{globEscape("embedgate:"), "embedgate:"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if ttlMillis(0) != 1000 || ttlMillis(-time.Hour) != 1000 || ttlMillis(time.Nanosecond) != 1 || ttlMillis(1<<62) != int64(maxTTL/time.Millisecond) {
		t.Fatal("ttlMillis bounds")
	}
}

func TestMirrorMergeKeepsLater(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	m := newMirror(func() time.Time { return now })
	at := now.Add(-time.Minute)
	m.cut("acme", "", at, now.Add(time.Hour).UnixNano())
	// A stale copy (older cutoff, shorter until), as a resync may bring.
	m.cut("acme", "", at.Add(-time.Minute), now.Add(time.Minute).UnixNano())
	s := SessionRef{ID: "s", Tenant: "acme", Subject: "jane", IssuedAt: at}
	now = now.Add(30 * time.Minute)
	if !m.revoked(s) {
		t.Fatal("a stale copy shortened or moved back the cutoff")
	}
	m.revokeSession("sid", now.Add(time.Hour).UnixNano())
	m.revokeSession("sid", now.Add(time.Second).UnixNano())
	now = now.Add(time.Minute)
	if !m.revoked(SessionRef{ID: "sid", Tenant: "globex"}) {
		t.Fatal("a shorter revocation shortened the first")
	}
	now = now.Add(2 * time.Hour)
	m.sweep()
	if n, c := m.sizes(); n != 0 || c != 0 {
		t.Fatalf("after sweep: %d sessions, %d cutoffs", n, c)
	}
}

// Revoked is on every request: it must not allocate.
func TestMirrorRevokedAllocs(t *testing.T) {
	m := newMirror(time.Now)
	m.revokeSession("other", time.Now().Add(time.Hour).UnixNano())
	m.cut("globex", "", time.Now(), time.Now().Add(time.Hour).UnixNano())
	s := SessionRef{ID: "sid", Tenant: "acme", Subject: "jane", IssuedAt: time.Now()}
	if n := testing.AllocsPerRun(100, func() { m.revoked(s) }); n != 0 {
		t.Fatalf("revoked allocates %v times", n)
	}
}

func BenchmarkRedisRevoked(b *testing.B) {
	m := newMirror(time.Now)
	m.revokeSession("other", time.Now().Add(time.Hour).UnixNano())
	m.cut("globex", "", time.Now(), time.Now().Add(time.Hour).UnixNano())
	r := &Redis{mirror: m}
	s := SessionRef{ID: "sid", Tenant: "acme", Subject: "jane", IssuedAt: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if r.Revoked(s) {
			b.Fatal("revoked")
		}
	}
}

// skip_verify and a configured TLS config reach every kind of client; a
// tls config without a rediss scheme is refused.
func TestNewRedisClientTLS(t *testing.T) {
	configured := &tls.Config{ServerName: "redis.internal", MinVersion: tls.VersionTLS12}
	for _, raw := range []string{
		"rediss://10.0.0.1:6380",
		"rediss+sentinel://10.0.0.1:26379?master_name=m",
		"rediss+cluster://10.0.0.1:7000?skip_verify=true",
	} {
		spec, err := newRedisClient(raw, configured)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		var got *tls.Config
		switch c := spec.client.(type) {
		case *redis.Client:
			got = c.Options().TLSConfig
		case *redis.ClusterClient:
			got = c.Options().TLSConfig
			if !got.InsecureSkipVerify {
				t.Errorf("%s: skip_verify lost", raw)
			}
		}
		if got == nil || got.ServerName != "redis.internal" {
			t.Errorf("%s: TLS config %+v, want the configured one", raw, got)
		}
		if strings.Contains(raw, "sentinel") && (spec.sentinel == nil || spec.sentinel.TLSConfig.ServerName != "redis.internal") {
			t.Errorf("%s: the sentinels do not get the TLS config", raw)
		}
		_ = spec.client.Close()
	}
	if _, err := newRedisClient("redis://10.0.0.1:6379", configured); err == nil || !strings.Contains(err.Error(), "rediss://") {
		t.Fatalf("tls with redis://: %v", err)
	}
	// Without a server_name, the URL's host is checked.
	spec, err := newRedisClient("rediss://redis.example:6380", &tls.Config{MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	if sn := spec.client.(*redis.Client).Options().TLSConfig.ServerName; sn != "redis.example" {
		t.Fatalf("server name %q, want the URL's host", sn)
	}
	_ = spec.client.Close()
}

// An entry the periodic reload added whose announcement arrives (after the
// reload read it, or before) was only in flight: it is not reported as
// missed. Past maxGapKeys, entries are neither tracked nor counted, so a
// burst of sign-outs during a reload is not mistaken for a gap.
func TestReloadGapCountsOnlyUndelivered(t *testing.T) {
	r := &Redis{prefix: "p:"}
	gap := newGapSet()
	rl := reloader{gap: gap}
	rl.announced(r, revEntry{SID: "early"}) // announced before the reload read it
	gap.add(r.sidKey("early"))
	gap.add(r.sidKey("s1"))
	gap.add(r.cutKey("acme", "jane"))
	gap.add(r.sidKey("never-announced"))
	rl.announced(r, revEntry{SID: "s1"})
	rl.announced(r, revEntry{Tenant: "acme", Subject: "jane", At: 1})
	rl.announced(r, revEntry{SID: "not-in-the-gap"})
	if n := gap.missed(); n != 1 {
		t.Fatalf("missed %d, want 1 (the one never announced)", n)
	}
	big := newGapSet()
	for i := range maxGapKeys + 5 {
		big.add(r.sidKey(fmt.Sprint(i)))
	}
	if n := big.missed(); n != maxGapKeys {
		t.Fatalf("missed %d, want %d (the tracked ones)", n, maxGapKeys)
	}
}
