package session

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/embedgate/embedgate/internal/reason"
)

// The envelope, version 1, before base64url (raw) encoding:
//
//	version (1) | key id (4) | tenant length (1) | tenant | nonce (12) | ciphertext+tag (16)
//
// The tenant travels in clear because the opener needs it to rebuild the
// additional data, cookieName + "\x00" + tenant + "\x00" + host; it is also
// inside the plaintext, and Open checks the two match. The host (the request
// host, lower-case, no port) binds a cookie to the site that set it: a
// __Host- cookie is never sent to another host by a browser, and with the
// host in the additional data a cookie pasted into a request for another
// site that shares the session key does not open either.
const (
	envVersion   = 1
	keyIDLen     = 4
	nonceLen     = 12
	tagLen       = 16
	headerLen    = 1 + keyIDLen + 1 // before the tenant
	minEnvelope  = headerLen + 1 + nonceLen + tagLen
	minSecretLen = 32

	keyInfo   = "embedgate session v1"
	keyIDInfo = "embedgate session v1 key id"
)

// cookieEnc is strict so that each envelope has exactly one encoding.
var cookieEnc = base64.RawURLEncoding.Strict()

// Sealer seals and opens session cookies with a key ring. It is safe for
// concurrent use.
type Sealer struct {
	adPrefix []byte    // cookieName + "\x00"
	keys     []ringKey // keys[0] seals; all open
	opened   *openCache
}

type ringKey struct {
	id   [keyIDLen]byte
	aead cipher.AEAD
}

// NewSealer returns a Sealer for the cookie named cookieName. Each secret must
// be at least 32 bytes; the first seals, all open, so a new secret is put
// first and an old one kept after it until its cookies have expired. Each
// AES-256 key is derived with HKDF-SHA256; the 4-byte key id comes from a
// separate HKDF output, so it identifies the key without revealing it.
func NewSealer(cookieName string, secrets [][]byte) (*Sealer, error) {
	if err := checkCookieName(cookieName); err != nil {
		return nil, err
	}
	if len(secrets) == 0 {
		return nil, errors.New("session: empty key ring: at least one secret is required")
	}
	s := &Sealer{adPrefix: append([]byte(cookieName), 0), opened: newOpenCache()}
	derived := make([][]byte, 0, len(secrets))
	for i, secret := range secrets {
		if len(secret) < minSecretLen {
			return nil, fmt.Errorf("session: secret %d of %d is %d bytes, at least %d required", i+1, len(secrets), len(secret), minSecretLen)
		}
		key, err := hkdf.Key(sha256.New, secret, nil, keyInfo, 32)
		if err != nil {
			return nil, fmt.Errorf("session: deriving key %d: %w", i+1, err)
		}
		id, err := hkdf.Key(sha256.New, secret, nil, keyIDInfo, keyIDLen)
		if err != nil {
			return nil, fmt.Errorf("session: deriving key id %d: %w", i+1, err)
		}
		k := ringKey{id: [keyIDLen]byte(id)}
		if j := s.find(k.id[:]); j >= 0 {
			if bytes.Equal(derived[j], key) {
				continue // the same secret listed twice: harmless
			}
			return nil, fmt.Errorf("session: secrets %d and %d have colliding key ids; replace one", j+1, i+1)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("session: key %d: %w", i+1, err)
		}
		if k.aead, err = cipher.NewGCM(block); err != nil {
			return nil, fmt.Errorf("session: key %d: %w", i+1, err)
		}
		s.keys = append(s.keys, k)
		derived = append(derived, key)
	}
	return s, nil
}

// checkCookieName accepts RFC 9110 token characters only. Above all it keeps
// NUL out, which separates the name from the tenant in the additional data.
func checkCookieName(name string) error {
	if name == "" {
		return errors.New("session: empty cookie name")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return fmt.Errorf("session: cookie name has an invalid character at byte %d", i)
		}
	}
	return nil
}

// find returns the ring index of key id, or -1.
func (s *Sealer) find(id []byte) int {
	for i := range s.keys {
		if string(s.keys[i].id[:]) == string(id) {
			return i
		}
	}
	return -1
}

// Seal returns the cookie value for sess, sealed with the first key under a
// fresh random nonce. Times are stored at second precision. It fails with
// reason.SessionTooLarge when the value would exceed MaxCookieValue, and with
// a plain error when sess lacks an ID, a tenant (1..255 bytes) or an expiry.
func (s *Sealer) Seal(sess *Session, host string) (string, error) {
	if err := sess.validate(); err != nil {
		return "", err
	}
	k := &s.keys[0]
	tl := len(sess.Tenant)
	ptStart := headerLen + tl + nonceLen
	// One buffer: the envelope, with room for the tag, then the additional data.
	envCap := ptStart + plainBound(sess) + tagLen
	buf := make([]byte, ptStart, envCap+len(s.adPrefix)+tl+1+len(host))
	buf[0] = envVersion
	copy(buf[1:], k.id[:])
	buf[headerLen-1] = byte(tl)
	copy(buf[headerLen:], sess.Tenant)
	nonce := buf[ptStart-nonceLen : ptStart]
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("session: reading nonce: %w", err)
	}
	buf = appendPlain(buf, sess)
	if n := cookieEnc.EncodedLen(len(buf) + tagLen); n > MaxCookieValue {
		return "", reason.Errorf(reason.SessionTooLarge, "sealed session would be %d bytes, limit %d", n, MaxCookieValue)
	}
	ad := s.appendAD(buf[len(buf)+tagLen:len(buf)+tagLen], sess.Tenant, host)
	// Seal in place: the ciphertext overwrites the plaintext exactly.
	env := k.aead.Seal(buf[:ptStart], nonce, buf[ptStart:], ad) // #nosec G407 -- nonce is 96 fresh random bits, read above
	return cookieEnc.EncodeToString(env), nil
}

// invalid builds the Open error. The detail names the check that failed and
// never echoes the value.
func invalid(detail string) error {
	return &reason.Error{Reason: reason.SessionInvalid, Detail: detail}
}

// Open authenticates and decodes a cookie value. Every failure is a
// *reason.Error with reason.SessionInvalid. Open does not check expiry: call
// Check on the result.
func (s *Sealer) Open(value, host string) (*Session, error) {
	sess, _, err := s.OpenClaims(value, host)
	if err != nil {
		return nil, err
	}
	// Open's caller owns the result, its slices too: the cached session
	// is shared by every request that sends this cookie.
	cp := *sess
	cp.Origins = slices.Clone(sess.Origins)
	cp.Claims = bytes.Clone(sess.Claims)
	return &cp, nil
}

// OpenClaims is Open that also returns the session's claims decoded
// (DecodeClaims), nil when it keeps none. A cookie sent again gets the
// session and the map opened the first time: both are shared by every
// request that sends the same cookie, so the caller reads them and never
// changes them (it copies the session to change it).
func (s *Sealer) OpenClaims(value, host string) (*Session, map[string]any, error) {
	if value == "" || len(value) > MaxCookieValue {
		sess, err := s.open(value, host) // refused before anything is hashed
		return sess, nil, err
	}
	k := s.opened.key(value, host)
	if sess, claims, ok := s.opened.get(k, value, host); ok {
		return sess, claims, nil
	}
	sess, err := s.open(value, host)
	if err != nil {
		return nil, nil, err
	}
	claims := DecodeClaims(sess.Claims)
	return s.opened.put(k, value, host, sess, claims), claims, nil
}

// open is Open without the cache.
func (s *Sealer) open(value, host string) (*Session, error) {
	switch {
	case value == "":
		return nil, invalid("empty cookie value")
	case len(value) > MaxCookieValue:
		return nil, invalid("cookie value too long")
	}
	n := cookieEnc.DecodedLen(len(value))
	if n < minEnvelope {
		return nil, invalid("envelope too short")
	}
	// One buffer: the decoded envelope, then room for the additional data.
	buf := make([]byte, n, n+len(s.adPrefix)+MaxTenantLen+1+len(host))
	if !decodeString(buf, value) {
		return nil, invalid("bad base64")
	}
	if buf[0] != envVersion {
		return nil, invalid("unknown version")
	}
	ki := s.find(buf[1 : 1+keyIDLen])
	if ki < 0 {
		return nil, invalid("unknown key id")
	}
	tl := int(buf[headerLen-1])
	ptStart := headerLen + tl + nonceLen
	if tl == 0 || ptStart+tagLen > n {
		return nil, invalid("bad tenant length")
	}
	tenant := buf[headerLen : headerLen+tl]
	ad := s.appendAD(buf[n:n], string(tenant), host)
	pt, err := s.keys[ki].aead.Open(buf[ptStart:ptStart], buf[ptStart-nonceLen:ptStart], buf[ptStart:n], ad)
	if err != nil {
		return nil, invalid("authentication failed")
	}
	sess, bad := decodePlain(pt)
	if bad != "" {
		return nil, invalid("bad plaintext: " + bad)
	}
	if sess.Tenant != string(tenant) {
		return nil, invalid("tenant mismatch")
	}
	if err := sess.validate(); err != nil {
		return nil, invalid("bad plaintext: missing field")
	}
	return sess, nil
}

// decodeString decodes value into dst, which must be exactly
// cookieEnc.DecodedLen(len(value)) long. It goes through a stack buffer in
// chunks rather than converting the whole string to []byte, which would cost
// an allocation per request. Each chunk but the last is a multiple of four
// characters, so it decodes on its own. Strict decoding still skips CR and
// LF; a chunk whose output does not re-encode to its exact length held some,
// and a cookie never does: refuse them.
func decodeString(dst []byte, value string) bool {
	var chunk [1024]byte
	out := 0
	for len(value) > 0 {
		m := copy(chunk[:], value)
		value = value[m:]
		k, err := cookieEnc.Decode(dst[out:], chunk[:m])
		if err != nil || cookieEnc.EncodedLen(k) != m {
			return false
		}
		out += k
	}
	return out == len(dst)
}

// appendAD appends the additional data, cookieName \x00 tenant \x00 host,
// to dst (spare capacity of the envelope buffer, so no allocation).
func (s *Sealer) appendAD(dst []byte, tenant, host string) []byte {
	dst = append(dst, s.adPrefix...)
	dst = append(append(dst, tenant...), 0)
	return append(dst, host...)
}
