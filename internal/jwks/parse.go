package jwks

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	"github.com/embedgate/embedgate/internal/tenant"
)

// jwk is one key as published. Members not read here (x5c, x5t, ...) are
// ignored; x5u, like any URL, is never fetched.
type jwk struct {
	Kty    string   `json:"kty"`
	Kid    *string  `json:"kid"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	Alg    string   `json:"alg"`
	Crv    string   `json:"crv"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
	D      *string  `json:"d"`
	K      *string  `json:"k"`
}

// Parse reads a JWK Set document. It fails only when the document itself is
// unusable (not a JSON object with a keys array, too many keys); each key
// that cannot be admitted is left out and reported in refused. Keys that are
// not for signatures (use other than sig, key_ops without verify) are left
// out silently. A kid that appears twice is left out altogether: neither key
// could be told apart.
func Parse(body []byte) (keys []tenant.Key, refused []error, err error) {
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, nil, errors.New("body is not a JSON object")
	}
	if doc.Keys == nil {
		return nil, nil, errors.New(`document has no "keys" array`)
	}
	if len(*doc.Keys) > MaxKeys {
		return nil, nil, fmt.Errorf("document has %d keys, limit %d", len(*doc.Keys), MaxKeys)
	}
	count := map[string]int{}
	var parsed []tenant.Key
	for i, raw := range *doc.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			refused = append(refused, fmt.Errorf("jwks: key #%d: not a JSON Web Key", i+1))
			continue
		}
		k, skip, err := admit(j)
		if err != nil {
			refused = append(refused, fmt.Errorf("jwks: key #%d%s: %w", i+1, kidNote(j.Kid), err))
			continue
		}
		if skip {
			continue
		}
		if k.KID != "" {
			count[k.KID]++
		}
		parsed = append(parsed, k)
	}
	for _, k := range parsed {
		if n := count[k.KID]; k.KID != "" && n != 1 {
			if n > 1 {
				refused = append(refused, fmt.Errorf("jwks: kid %q appears %d times; none of those keys is used", k.KID, n))
				count[k.KID] = 0 // reported once
			}
			continue
		}
		keys = append(keys, k)
	}
	return keys, refused, nil
}

func kidNote(kid *string) string {
	if kid == nil || *kid == "" {
		return ""
	}
	return fmt.Sprintf(" (kid %q)", *kid)
}

// b64 is the encoding of JWK members: unpadded base64url (RFC 7518 §6).
var b64 = base64.RawURLEncoding.Strict()

// admit turns a JWK into a verification key pinned to one algorithm, or says
// why not. skip reports a key that is valid but not for verifying signatures.
func admit(j jwk) (k tenant.Key, skip bool, err error) {
	if j.Use != "" && j.Use != "sig" {
		return k, true, nil
	}
	if j.KeyOps != nil {
		verify := false
		for _, op := range j.KeyOps {
			verify = verify || op == "verify"
		}
		if !verify {
			return k, true, nil
		}
	}
	if j.Kid != nil {
		k.KID = *j.Kid
	}
	if j.D != nil {
		return k, false, errors.New("holds private key material (d); publish public keys only")
	}
	switch j.Kty {
	case "oct":
		return k, false, errors.New("symmetric key (kty oct) refused: a key set must hold public keys only")
	case "RSA":
		// An RSA key serves RS256, RS384, RS512, PS256...: only an explicit
		// alg pins it to the one the verifier accepts.
		if j.Alg != tenant.RS256 {
			if j.Alg == "" {
				return k, false, errors.New("RSA key without alg: its algorithm is ambiguous (want alg RS256)")
			}
			return k, false, fmt.Errorf("alg %q is not accepted for RSA (want RS256)", j.Alg)
		}
		pub, err := rsaKey(j.N, j.E)
		if err != nil {
			return k, false, err
		}
		k.Public = pub
	case "EC", "OKP":
		pub, err := curvePublic(j)
		if err != nil {
			return k, false, err
		}
		k.Public = pub
	case "":
		return k, false, errors.New("no kty")
	default:
		return k, false, fmt.Errorf("kty %q is not accepted (want RSA, EC or OKP)", j.Kty)
	}
	// The JWK's own fields are checked above; which keys verify, and with
	// which algorithm, is tenant's one rule.
	accepted, err := tenant.AcceptPublicKey(k.Public)
	if err != nil {
		return k, false, err
	}
	k.Alg = accepted.Alg
	return k, false, nil
}

// curveKey is what a kty that names its curve (crv) is accepted with: the
// one curve, the algorithm it pins, and how its public point is read.
type curveKey struct {
	crv, alg string
	misfit   string // follows `alg "X"` when the JWK's alg is another one
	point    func(j jwk) (any, error)
}

// curveKeys are the curve-keyed ktys, one row each, read by one rule
// (curvePublic); which keys verify stays tenant.AcceptPublicKey's.
var curveKeys = map[string]curveKey{
	"EC":  {crv: "P-256", alg: tenant.ES256, misfit: "does not fit a P-256 key", point: p256Point},
	"OKP": {crv: "Ed25519", alg: tenant.EdDSA, misfit: "is not accepted for Ed25519", point: ed25519Point},
}

// curvePublic reads an EC or OKP key: its curve, its alg when it names one,
// then its point.
func curvePublic(j jwk) (any, error) {
	c := curveKeys[j.Kty]
	if j.Crv != c.crv {
		return nil, fmt.Errorf("%s curve %q is not accepted (want %s)", j.Kty, j.Crv, c.crv)
	}
	if j.Alg != "" && j.Alg != c.alg {
		return nil, fmt.Errorf("alg %q %s (want %s)", j.Alg, c.misfit, c.alg)
	}
	return c.point(j)
}

func p256Point(j jwk) (any, error) {
	x, errX := b64.DecodeString(j.X)
	y, errY := b64.DecodeString(j.Y)
	if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
		return nil, errors.New("EC key: x and y must be 32-byte base64url values")
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, errors.New("EC key: the point is not on P-256")
	}
	return pub, nil
}

func ed25519Point(j jwk) (any, error) {
	x, err := b64.DecodeString(j.X)
	if err != nil || len(x) != ed25519.PublicKeySize {
		return nil, errors.New("Ed25519 key: x must be a 32-byte base64url value")
	}
	return ed25519.PublicKey(x), nil
}

func rsaKey(n64, e64 string) (*rsa.PublicKey, error) {
	nb, errN := b64.DecodeString(n64)
	eb, errE := b64.DecodeString(e64)
	if errN != nil || errE != nil || len(nb) == 0 || len(eb) == 0 || len(eb) > 4 || nb[0] == 0 || eb[0] == 0 {
		return nil, errors.New("RSA key: n and e must be minimal base64url integers")
	}
	n := new(big.Int).SetBytes(nb)
	// Only the upper bound here (a huge modulus is a CPU cost per verify);
	// the lower one is tenant.AcceptPublicKey's.
	if bits := n.BitLen(); bits > maxRSABits {
		return nil, fmt.Errorf("RSA key is %d bits, at most %d accepted", bits, maxRSABits)
	}
	e := 0
	for _, b := range eb {
		e = e<<8 | int(b)
	}
	if e < 3 || e%2 == 0 || e > 1<<31-1 {
		return nil, errors.New("RSA key: e must be an odd integer of at least 3")
	}
	return &rsa.PublicKey{N: n, E: e}, nil
}
