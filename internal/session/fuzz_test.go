package session

import (
	"reflect"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/reason"
)

func FuzzOpen(f *testing.F) {
	s := newSealer(f, cookieName, secret(1), secret(2))
	sessions := []*Session{typical(), {ID: "i", Tenant: "t", ExpiresAt: t0}}
	x := typical()
	x.Origins, x.Claims, x.Subject = []string{}, []byte{}, "Jürgen 🦊"
	sessions = append(sessions, x)
	for _, sess := range sessions {
		v := seal(f, s, sess)
		f.Add(v)
		env, _ := cookieEnc.DecodeString(v)
		for _, i := range []int{0, 1, 5, 6, len(env) / 2, len(env) - 1} {
			e := append([]byte{}, env...)
			e[i] ^= 0x20
			f.Add(cookieEnc.EncodeToString(e))
		}
		f.Add(v[:len(v)-1])
		f.Add(v + "A")
	}
	f.Add("")
	f.Add("!!!!")
	f.Fuzz(func(t *testing.T, value string) {
		sess, err := s.Open(value, testHost)
		if err != nil {
			if sess != nil || reason.Of(err) != reason.SessionInvalid {
				t.Fatalf("Open = %v, %v", sess, err)
			}
			return
		}
		again, err := s.Seal(sess, testHost)
		if err != nil {
			t.Fatalf("an opened session does not seal again: %v", err)
		}
		got, err := s.Open(again, testHost)
		if err != nil {
			t.Fatalf("re-sealed session does not open: %v", err)
		}
		if !reflect.DeepEqual(got, sess) {
			t.Fatalf("re-seal changed the session:\n got %#v\nwant %#v", got, sess)
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	s := newSealer(b, cookieName, secret(1))
	sess := typical()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Seal(sess, testHost); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	s := newSealer(b, cookieName, secret(1), secret(2))
	for _, bc := range []struct {
		name string
		sess *Session
	}{
		{"typical", typical()},
		{"narrowed-origins", func() *Session {
			x := typical()
			x.Origins = []string{"https://app.acme.com", "https://admin.acme.com"}
			return x
		}()},
	} {
		// "cached" is a cookie sent again; "uncached" the first time one is
		// seen (decode, decrypt, parse).
		for _, mode := range []struct {
			name string
			open func(value, host string) (*Session, error)
		}{{"cached", s.Open}, {"uncached", s.open}} {
			b.Run(bc.name+"/"+mode.name, func(b *testing.B) {
				v := seal(b, s, bc.sess)
				b.ReportAllocs()
				for b.Loop() {
					sess, err := mode.open(v, testHost)
					if err != nil {
						b.Fatal(err)
					}
					if err := sess.Check(t0, 30*time.Minute); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
