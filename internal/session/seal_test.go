package session

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/reason"
)

const cookieName = "__Host-embed_session"

// testHost is the request host sessions are bound to in these tests.
const testHost = "portal.gate.test"

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func newSealer(t testing.TB, name string, secrets ...[]byte) *Sealer {
	t.Helper()
	s, err := NewSealer(name, secrets)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// typical is the session the size budget and the benchmarks are about.
func typical() *Session {
	return &Session{
		ID:        "q3Vn0M1aQ0yJb3lWc2VzMg",
		Tenant:    "acme",
		Subject:   "jane@acme.com",
		Origin:    "https://app.acme.com",
		Claims:    []byte(`{"role":"admin","org_id":"org_42","plan":"pro"}`),
		IssuedAt:  t0,
		LastSeen:  t0.Add(5 * time.Minute),
		ExpiresAt: t0.Add(8 * time.Hour),
	}
}

func seal(t testing.TB, s *Sealer, sess *Session) string {
	t.Helper()
	v, err := s.Seal(sess, testHost)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRoundTrip(t *testing.T) {
	s := newSealer(t, cookieName, secret(1))
	with := func(f func(*Session)) *Session { x := typical(); f(x); return x }
	tests := []struct {
		name string
		in   *Session
	}{
		{"typical", typical()},
		{"nil origins and claims", with(func(x *Session) { x.Origins, x.Claims = nil, nil })},
		{"empty origins and claims", with(func(x *Session) { x.Origins, x.Claims = []string{}, []byte{} })},
		{"narrowed origins", with(func(x *Session) { x.Origins = []string{"https://a.example", "", "https://b.example:8443"} })},
		{"unicode subject", with(func(x *Session) { x.Subject = "Jürgen Ødegård 山田 🦊" })},
		{"empty subject and origin", with(func(x *Session) { x.Subject, x.Origin = "", "" })},
		{"max tenant", with(func(x *Session) { x.Tenant = strings.Repeat("t", 255) })},
		{"zero issued and last seen", with(func(x *Session) { x.IssuedAt, x.LastSeen = time.Time{}, time.Time{} })},
		{"pre-epoch and far future", with(func(x *Session) {
			x.IssuedAt = time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
			x.ExpiresAt = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Open(seal(t, s, tt.in), testHost)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.in) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, tt.in)
			}
			if (got.Origins == nil) != (tt.in.Origins == nil) || (got.Claims == nil) != (tt.in.Claims == nil) {
				t.Fatal("nil and empty are not kept apart")
			}
		})
	}
}

func TestRoundTripSecondPrecision(t *testing.T) {
	s := newSealer(t, cookieName, secret(1))
	in := typical()
	in.IssuedAt = t0.Add(999 * time.Millisecond).In(time.FixedZone("X", 3600))
	got, err := s.Open(seal(t, s, in), testHost)
	if err != nil {
		t.Fatal(err)
	}
	if !got.IssuedAt.Equal(t0) || got.IssuedAt.Location() != time.UTC {
		t.Fatalf("IssuedAt = %v, want %v in UTC", got.IssuedAt, t0)
	}
}

func TestSealRefusesIncompleteSession(t *testing.T) {
	s := newSealer(t, cookieName, secret(1))
	for name, f := range map[string]func(*Session){
		"no id":       func(x *Session) { x.ID = "" },
		"no tenant":   func(x *Session) { x.Tenant = "" },
		"long tenant": func(x *Session) { x.Tenant = strings.Repeat("t", 256) },
		"no expiry":   func(x *Session) { x.ExpiresAt = time.Time{} },
	} {
		x := typical()
		f(x)
		if v, err := s.Seal(x, testHost); err == nil {
			t.Errorf("%s: Seal = %q, want error", name, v)
		}
	}
}

func TestSize(t *testing.T) {
	s := newSealer(t, cookieName, secret(1))
	v := seal(t, s, typical())
	t.Logf("typical session: %d-byte cookie value", len(v))
	if len(v) >= 1024 {
		t.Fatalf("typical session seals to %d bytes, want < 1024", len(v))
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			t.Fatalf("cookie value has %q, not base64url", c)
		}
	}

	big := typical()
	big.Claims = bytes.Repeat([]byte("x"), 3000)
	_, err := s.Seal(big, testHost)
	wantReason(t, err, reason.SessionTooLarge)

	// Seal's and Open's limits agree: the largest value Seal makes opens.
	var last string
	for n := 2600; ; n++ {
		big.Claims = bytes.Repeat([]byte("x"), n)
		v, err := s.Seal(big, testHost)
		if err != nil {
			wantReason(t, err, reason.SessionTooLarge)
			break
		}
		last = v
	}
	if len(last) > MaxCookieValue || len(last) < MaxCookieValue-4 {
		t.Fatalf("largest sealed value is %d bytes, want just under %d", len(last), MaxCookieValue)
	}
	if _, err := s.Open(last, testHost); err != nil {
		t.Fatalf("Open(largest) = %v", err)
	}
}

func TestRotation(t *testing.T) {
	a, b := secret('A'), secret('B')
	sA := newSealer(t, cookieName, a)
	sBA := newSealer(t, cookieName, b, a)
	sB := newSealer(t, cookieName, b)

	old := seal(t, sA, typical())
	if _, err := sBA.Open(old, testHost); err != nil {
		t.Fatalf("ring [B, A] refuses a cookie sealed with A: %v", err)
	}
	e := wantReason(t, func() error { _, err := sB.Open(old, testHost); return err }(), reason.SessionInvalid)
	if e.Detail != "unknown key id" {
		t.Fatalf("detail = %q, want unknown key id", e.Detail)
	}

	fresh := seal(t, sBA, typical())
	if _, err := sB.Open(fresh, testHost); err != nil {
		t.Fatalf("new seals do not use the first key: %v", err)
	}
	if _, err := sA.Open(fresh, testHost); err == nil {
		t.Fatal("a cookie sealed by ring [B, A] opens with A alone")
	}
	env, _ := cookieEnc.DecodeString(fresh)
	if !bytes.Equal(env[1:5], sB.keys[0].id[:]) {
		t.Fatal("envelope does not carry the first key's id")
	}
}

// TestKeyDerivation pins the derivation, so another tool (embed-inspect) can
// rebuild it: the AES key and the key id are separate HKDF-SHA256 outputs,
// so the id, which travels in clear, says nothing about the key.
func TestKeyDerivation(t *testing.T) {
	sec := secret(7)
	s := newSealer(t, cookieName, sec)
	key, _ := hkdf.Key(sha256.New, sec, nil, "embedgate session v1", 32)
	id, _ := hkdf.Key(sha256.New, sec, nil, "embedgate session v1 key id", 4)
	env, _ := cookieEnc.DecodeString(seal(t, s, typical()))
	if !bytes.Equal(env[1:5], id) {
		t.Fatalf("key id = %x, want %x", env[1:5], id)
	}
	if bytes.Contains(key, id) || bytes.Contains(sec, id) {
		t.Fatal("key id is taken from the key or the secret")
	}
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	tl := int(env[headerLen-1])
	ptStart := headerLen + tl + nonceLen
	ad := cookieName + "\x00" + string(env[headerLen:headerLen+tl]) + "\x00" + testHost
	if _, err := gcm.Open(nil, env[ptStart-nonceLen:ptStart], env[ptStart:], []byte(ad)); err != nil {
		t.Fatalf("independently derived key does not open the envelope: %v", err)
	}
}

func TestFreshNonce(t *testing.T) {
	s := newSealer(t, cookieName, secret(1))
	v1, v2 := seal(t, s, typical()), seal(t, s, typical())
	if v1 == v2 {
		t.Fatal("two seals of the same session are equal")
	}
	e1, _ := cookieEnc.DecodeString(v1)
	e2, _ := cookieEnc.DecodeString(v2)
	n := headerLen + len("acme")
	if bytes.Equal(e1[n:n+nonceLen], e2[n:n+nonceLen]) {
		t.Fatal("nonce reused")
	}
}

// sealRaw seals an arbitrary plaintext under s's first key, to reach the
// checks that follow authentication.
func sealRaw(s *Sealer, tenant string, pt []byte) string {
	k := s.keys[0]
	env := append([]byte{envVersion}, k.id[:]...)
	env = append(append(env, byte(len(tenant))), tenant...)
	nonce := make([]byte, nonceLen)
	rand.Read(nonce)
	env = append(env, nonce...)
	ad := append(append([]byte{}, s.adPrefix...), tenant+"\x00"+testHost...)
	return cookieEnc.EncodeToString(k.aead.Seal(env, nonce, pt, ad))
}

func TestOpenRefuses(t *testing.T) {
	s := newSealer(t, cookieName, secret(1))
	valid := seal(t, s, typical())
	env, err := cookieEnc.DecodeString(valid)
	if err != nil {
		t.Fatal(err)
	}
	enc := cookieEnc.EncodeToString
	// reenvelope swaps the clear-text tenant, keeping the ciphertext.
	reenvelope := func(tenant string) string {
		e := append([]byte{}, env[:headerLen-1]...)
		e = append(append(e, byte(len(tenant))), tenant...)
		return enc(append(e, env[headerLen+len("acme"):]...))
	}
	withTrailing := func() string {
		x := typical()
		return sealRaw(s, "acme", append(appendPlain(nil, x), 0))
	}
	noID := func() string {
		x := typical()
		x.ID = ""
		return sealRaw(s, "acme", appendPlain(nil, x))
	}
	otherTenant := func() string {
		x := typical()
		x.Tenant = "evil"
		return sealRaw(s, "acme", appendPlain(nil, x))
	}
	// strictPad finds a sealed value whose last character carries padding
	// bits and sets one: lenient decoding would accept it unchanged.
	strictPad := func() string {
		x := typical()
		for {
			v := seal(t, s, x)
			if len(v)%4 != 0 {
				const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
				i := strings.IndexByte(alpha, v[len(v)-1])
				return v[:len(v)-1] + string(alpha[i|1])
			}
			x.Subject += "x"
		}
	}
	tests := []struct {
		name, value, detail string
	}{
		{"empty", "", "empty cookie value"},
		{"over-long", strings.Repeat("A", MaxCookieValue+1), "cookie value too long"},
		{"short", valid[:20], "envelope too short"},
		{"non-base64", strings.Repeat("!", 100), "bad base64"},
		{"std alphabet", strings.Repeat("+/", 50), "bad base64"},
		{"padded", valid + "==", "bad base64"},
		{"newline inside", valid[:10] + "\n" + valid[10:], "bad base64"},
		{"padding bits set", strictPad(), "bad base64"},
		{"unknown version", enc(append([]byte{2}, env[1:]...)), "unknown version"},
		{"altered tenant, same length", reenvelope("acmf"), "authentication failed"},
		{"altered tenant, other length", reenvelope("acme2"), "authentication failed"},
		{"zero tenant length", reenvelope(""), "bad tenant length"},
		{"tenant length past end", func() string { e := append([]byte{}, env...); e[headerLen-1] = 255; return enc(e) }(), "bad tenant length"},
		{"trailing envelope byte", enc(append(append([]byte{}, env...), 0)), "authentication failed"},
		{"other cookie name", seal(t, newSealer(t, "embed_session", secret(1)), typical()), "authentication failed"},
		{"trailing plaintext byte", withTrailing(), "bad plaintext: trailing bytes"},
		{"plaintext tenant differs", otherTenant(), "tenant mismatch"},
		{"plaintext missing id", noID(), "bad plaintext: missing field"},
		{"garbage plaintext", sealRaw(s, "acme", []byte{0xff}), "bad plaintext: bad varint"},
		{"plaintext length past end", sealRaw(s, "acme", []byte{5, 'a'}), "bad plaintext: length out of bounds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sess, err := s.Open(tt.value, testHost)
			if sess != nil {
				t.Fatal("Open returned a session with an error")
			}
			e := wantReason(t, err, reason.SessionInvalid)
			if e.Detail != tt.detail {
				t.Fatalf("detail = %q, want %q", e.Detail, tt.detail)
			}
			if len(tt.value) > 8 && strings.Contains(err.Error(), tt.value[:8]) {
				t.Fatal("error echoes the cookie value")
			}
		})
	}
}

func TestOpenRefusesEveryTamperedByte(t *testing.T) {
	s := newSealer(t, cookieName, secret(1))
	env, _ := cookieEnc.DecodeString(seal(t, s, typical()))
	for i := range env {
		for _, flip := range []byte{0x01, 0x80, 0xff} {
			e := append([]byte{}, env...)
			e[i] ^= flip
			_, err := s.Open(cookieEnc.EncodeToString(e), testHost)
			if err == nil {
				t.Fatalf("byte %d ^ %#x: tampered cookie opens", i, flip)
			}
			if reason.Of(err) != reason.SessionInvalid {
				t.Fatalf("byte %d: reason %q", i, reason.Of(err))
			}
		}
	}
}

func TestOpenRefusesEveryTruncation(t *testing.T) {
	s := newSealer(t, cookieName, secret(1))
	v := seal(t, s, typical())
	for n := 0; n < len(v); n++ {
		if _, err := s.Open(v[:n], testHost); reason.Of(err) != reason.SessionInvalid {
			t.Fatalf("truncated to %d: err = %v", n, err)
		}
	}
}

func TestNewSealerRefuses(t *testing.T) {
	tests := []struct {
		name, cookie string
		secrets      [][]byte
		want         string // in the error
	}{
		{"nil ring", cookieName, nil, "empty key ring"},
		{"empty ring", cookieName, [][]byte{}, "empty key ring"},
		{"short first", cookieName, [][]byte{[]byte("short-secret-value")}, "secret 1 of 1 is 18 bytes"},
		{"short second", cookieName, [][]byte{secret(1), []byte("short-secret-value"), secret(2)}, "secret 2 of 3"},
		{"31 bytes", cookieName, [][]byte{secret(1)[:31]}, "31 bytes"},
		{"empty cookie name", "", [][]byte{secret(1)}, "empty cookie name"},
		{"NUL in cookie name", "a\x00b", [][]byte{secret(1)}, "invalid character"},
		{"space in cookie name", "a b", [][]byte{secret(1)}, "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSealer(tt.cookie, tt.secrets)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "short-secret-value") {
				t.Fatal("error echoes the secret")
			}
		})
	}
}

func TestNewSealerAcceptsDuplicateSecret(t *testing.T) {
	s := newSealer(t, cookieName, secret(1), secret(1), secret(2))
	if len(s.keys) != 2 {
		t.Fatalf("ring has %d keys, want 2", len(s.keys))
	}
}

// Strict base64 still skips CR and LF; Open must not, wherever they fall
// (including in the later chunks of a long value).
func TestOpenRefusesLineBreaksAnywhere(t *testing.T) {
	s := newSealer(t, cookieName, secret(1))
	x := typical()
	x.Claims = bytes.Repeat([]byte("c"), 1500)
	v := seal(t, s, x)
	for i := 0; i <= len(v); i++ {
		for _, nl := range []string{"\n", "\r", "\r\n"} {
			if _, err := s.Open(v[:i]+nl+v[i:], testHost); err == nil {
				t.Fatalf("%q at %d: opens", nl, i)
			}
		}
	}
}

// A cookie is bound to the host that set it: pasted into a request for
// another site that shares the session key, it does not open.
func TestCookieBoundToHost(t *testing.T) {
	s, err := NewSealer(cookieName, [][]byte{[]byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	v, err := s.Seal(&Session{ID: "id", Tenant: "acme", Subject: "jane", IssuedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}, "a.portal.test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(v, "a.portal.test"); err != nil {
		t.Fatalf("own host: %v", err)
	}
	for _, other := range []string{"b.portal.test", "", "a.portal.test.evil"} {
		if _, err := s.Open(v, other); reason.Of(err) != reason.SessionInvalid {
			t.Fatalf("opened for host %q: %v", other, err)
		}
	}
}
