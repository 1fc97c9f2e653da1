package replay

import (
	"strings"
	"testing"
)

// TestRedisURLErrorsHidePasswordPieces: a password holding a URL delimiter
// that was not percent-encoded ('/', '?', '#', '&': common in generated
// base64 passwords) moves part of it out of the userinfo, where the parser's
// error, or the displayed target (logs, admin API), quoted it. README:
// "errors and logs never show the password".
func TestRedisURLErrorsHidePasswordPieces(t *testing.T) {
	const a, b = "Ab9x", "Qz7Kp" // the two halves of the password
	for _, raw := range []string{
		"redis://:" + a + "/" + b + "@redis.internal:6379/0",
		"redis://:73914/" + b + "@redis.internal:6379/0",
		"redis://app:" + a + "?" + b + "@redis.internal:6379",
		"redis://app:" + a + "#" + b + "@redis.internal:6379",
		"redis+cluster://:" + a + "/" + b + "@h:7000",
		"redis+sentinel://h:26379?master_name=m&password=" + a + "&" + b,
		"redis+sentinel://h:26379?master_name=m&password=" + a + "#" + b,
	} {
		spec, err := newRedisClient(raw, nil)
		if spec.client != nil {
			_ = spec.client.Close()
		}
		shown := []string{errText(err), spec.target}
		if err == nil { // what the running store's log lines show
			shown = append(shown, RedactURL(raw))
		}
		for _, shown := range shown {
			if strings.Contains(shown, a) || strings.Contains(shown, b) {
				t.Errorf("%s: shows part of the password: %q", raw, shown)
			}
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestRedisURLErrorKeepsUsefulDetail: a URL whose password is well formed
// (percent-encoded, the userinfo intact) keeps the parser's own error about
// a non-secret part (an option name or value, the database): nearly every
// production URL holds a password, so a blanket "percent-encode the
// password" would hide every such error behind the wrong advice.
func TestRedisURLErrorKeepsUsefulDetail(t *testing.T) {
	for _, c := range []struct{ raw, want string }{
		{"redis://:s3cretPW@redis.internal:6379/0?dial_timeout=ten", "dial_timeout"},
		{"redis://app:s3cretPW@redis.internal:6379/zero", "database"},
		{"redis+sentinel://:s3cretPW@h:26379?master_nam=m", "master_nam"},
		{"redis://:s3cretPW@redis.internal:6379/0?pool_sise=10", "pool_sise"},
	} {
		spec, err := newRedisClient(c.raw, nil)
		if spec.client != nil {
			_ = spec.client.Close()
		}
		if err == nil {
			t.Errorf("%s: no error", c.raw)
			continue
		}
		if strings.Contains(err.Error(), "s3cretPW") {
			t.Errorf("%s: error shows the password: %v", c.raw, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not name %q (the parser said what is wrong; the password is well formed)", c.raw, err, c.want)
		}
	}
}

// TestRedisURLStrayPercentHidden: a stray '%' in a password is quoted by
// url.Parse ("invalid URL escape \"%Qz\""): still hidden.
func TestRedisURLStrayPercentHidden(t *testing.T) {
	spec, err := newRedisClient("redis://:Ab9x%Qz7Kp@redis.internal:6379/0", nil)
	if spec.client != nil {
		_ = spec.client.Close()
	}
	if err == nil || strings.Contains(err.Error(), "Qz") {
		t.Fatalf("error %v shows part of the password", err)
	}
}

// TestRedisURLRefusesReplicaReads: options that send reads to replicas
// are refused. A replica may lag its master: a reload's GET of a key the
// master's SCAN listed answers nil there, and the revocation is skipped as
// if it had expired; with replica_only every claim fails READONLY.
func TestRedisURLRefusesReplicaReads(t *testing.T) {
	for _, c := range []struct{ raw, name string }{
		{"redis+cluster://h:7000?read_only=true", "read_only"},
		{"redis+cluster://h:7000?route_by_latency=true", "route_by_latency"},
		{"redis+cluster://h:7000?route_randomly=true", "route_randomly"},
		{"redis+sentinel://h:26379?master_name=m&replica_only=true", "replica_only"},
		{"redis+sentinel://h:26379?master_name=m&route_by_latency=true", "route_by_latency"},
		{"redis+sentinel://h:26379?master_name=m&use_disconnected_replicas=true", "use_disconnected_replicas"},
	} {
		err := CheckURL(c.raw, nil)
		if err == nil || !strings.Contains(err.Error(), c.name+" is not supported") {
			t.Errorf("%s: %v, want %s refused", c.raw, err, c.name)
		}
	}
	for _, raw := range []string{"redis+cluster://h:7000?read_only=false", "redis+sentinel://h:26379?master_name=m"} {
		if err := CheckURL(raw, nil); err != nil {
			t.Errorf("%s: %v", raw, err)
		}
	}
}

// SameServer: URLs that differ in their passwords only name the same
// Redis; any other difference (host, database, user, options) does not.
func TestSameServer(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"redis://:old@h:6379/0", "redis://:new@h:6379/0", true},
		{"redis://app:old@h:6379/0", "redis://app:new@h:6379/0", true},
		{"redis+sentinel://h:26379?master_name=m&password=old", "redis+sentinel://h:26379?master_name=m&password=new", true},
		{"redis://:pw@h:6379/0", "redis://:pw@h:6379/1", false},
		{"redis://:pw@h:6379/0", "redis://:pw@g:6379/0", false},
		{"redis://app:pw@h:6379/0", "redis://ops:pw@h:6379/0", false},
		{"redis+sentinel://h:26379?master_name=m", "redis+sentinel://h:26379?master_name=n", false},
		{"redis://:a/b@h:6379", "redis://:c/d@h:6379", false}, // unparsable: never matched by their redaction
	} {
		if got := SameServer(c.a, c.b); got != c.same {
			t.Errorf("SameServer(%q, %q) = %v, want %v", c.a, c.b, got, c.same)
		}
	}
}
