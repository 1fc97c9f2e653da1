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
