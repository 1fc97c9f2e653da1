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
