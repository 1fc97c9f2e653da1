package assertion

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/embedgate/embedgate/internal/tenant"
)

// Key is one signing key of the ring.
type Key struct {
	Signer crypto.Signer // *ecdsa.PrivateKey (P-256) or ed25519.PrivateKey
	Alg    string        // tenant.ES256 or tenant.EdDSA, pinned by key type
	KID    string        // "" means the RFC 7638 thumbprint
}

// KeySource hands out the current key ring: a *Ring, or (in the adapter) a
// key generated on first use and kept in shared storage. It runs on a cache
// miss and for the JWKS, so it must be cheap once the ring exists.
type KeySource interface {
	Ring() (*Ring, error)
}

// Ring is an immutable set of signing keys: the first signs, all are
// published. A rotation is a new Ring (a new config).
type Ring struct {
	keys []Key
	jwks []byte
}

// Ring makes a *Ring its own KeySource.
func (r *Ring) Ring() (*Ring, error) { return r, nil }

// JWKS is the ring's public keys as an RFC 7517 key set, built once.
func (r *Ring) JWKS() []byte { return r.jwks }

// KIDs are the key ids in ring order; the first is the signing key.
func (r *Ring) KIDs() []string {
	out := make([]string, len(r.keys))
	for i, k := range r.keys {
		out[i] = k.KID
	}
	return out
}

// signing is the key that signs.
func (r *Ring) signing() Key { return r.keys[0] }

// NewRing checks keys (ES256 on P-256 or EdDSA on Ed25519 only, each
// algorithm pinned by key type), fills in missing kids with the key's
// RFC 7638 thumbprint, refuses a kid given twice, and builds the JWKS.
func NewRing(keys []Key) (*Ring, error) {
	if len(keys) == 0 {
		return nil, errors.New("assertion: no signing key")
	}
	r := &Ring{keys: make([]Key, len(keys))}
	set := jwkSet{Keys: make([]jwk, len(keys))}
	seen := map[string]bool{}
	for i, k := range keys {
		alg, err := acceptKey(k.Signer)
		if err != nil {
			return nil, fmt.Errorf("assertion: key #%d: %w", i+1, err)
		}
		if k.Alg != "" && k.Alg != alg {
			return nil, fmt.Errorf("assertion: key #%d: a %s key cannot sign %s", i+1, alg, k.Alg)
		}
		pub := publicJWK(k.Signer.Public())
		if k.KID == "" {
			k.KID = pub.thumbprint()
		}
		if seen[k.KID] {
			return nil, fmt.Errorf("assertion: key #%d: kid %q given twice", i+1, k.KID)
		}
		seen[k.KID] = true
		k.Alg = alg
		r.keys[i] = k
		pub.KID, pub.Alg, pub.Use = k.KID, alg, "sig"
		set.Keys[i] = pub
	}
	var err error
	if r.jwks, err = json.Marshal(set); err != nil {
		return nil, fmt.Errorf("assertion: encoding the JWKS: %w", err)
	}
	return r, nil
}

// acceptKey is tenant.AcceptPrivateKey's algorithm, narrowed to the two
// the gateway signs with: RSA keys are refused (large, slow signatures).
func acceptKey(s crypto.Signer) (string, error) {
	if s == nil {
		return "", errors.New("no key")
	}
	alg, err := tenant.AcceptPrivateKey(s)
	if err != nil {
		return "", err
	}
	if alg != tenant.ES256 && alg != tenant.EdDSA {
		return "", fmt.Errorf("a %s key cannot sign assertions (want ES256 on P-256 or EdDSA on Ed25519)", alg)
	}
	return alg, nil
}

// ParseKeyPEM reads one private key, PKCS#8 (PRIVATE KEY) or SEC1 (EC
// PRIVATE KEY), through tenant.ParsePrivateKeyPEM, and accepts only ES256
// (P-256) and EdDSA (Ed25519).
func ParseKeyPEM(data []byte) (Key, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return Key{}, errors.New("no PEM block found")
	}
	if block.Type != "PRIVATE KEY" && block.Type != "EC PRIVATE KEY" {
		return Key{}, fmt.Errorf("PEM block %q: want PRIVATE KEY (PKCS#8) or EC PRIVATE KEY (SEC1)", block.Type)
	}
	signer, _, err := tenant.ParsePrivateKeyPEM(block)
	if err != nil {
		return Key{}, err
	}
	alg, err := acceptKey(signer)
	if err != nil {
		return Key{}, err
	}
	return Key{Signer: signer, Alg: alg}, nil
}

// GenerateKey makes a P-256 key and its PKCS#8 PEM encoding, for the
// adapter to keep in storage.
func GenerateKey() (Key, []byte, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Key{}, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return Key{}, nil, err
	}
	return Key{Signer: priv, Alg: tenant.ES256}, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

type jwkSet struct {
	Keys []jwk `json:"keys"`
}

// jwk is a public key as published: only public members, in this order.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y,omitempty"`
	KID string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// publicJWK is the JWK of a public key acceptKey let through.
func publicJWK(pub crypto.PublicKey) jwk {
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		// Uncompressed point 0x04 || X || Y, each 32 bytes for P-256.
		b, err := k.Bytes()
		if err != nil || len(b) != 65 {
			return jwk{}
		}
		return jwk{Kty: "EC", Crv: "P-256", X: b64(b[1:33]), Y: b64(b[33:])}
	case ed25519.PublicKey:
		return jwk{Kty: "OKP", Crv: "Ed25519", X: b64(k)}
	}
	return jwk{}
}

// thumbprint is the RFC 7638 JWK thumbprint: SHA-256 over the required
// members in lexicographic order, without whitespace, base64url.
func (j jwk) thumbprint() string {
	var in string
	if j.Kty == "EC" {
		in = `{"crv":"` + j.Crv + `","kty":"EC","x":"` + j.X + `","y":"` + j.Y + `"}`
	} else {
		in = `{"crv":"` + j.Crv + `","kty":"` + j.Kty + `","x":"` + j.X + `"}`
	}
	sum := sha256.Sum256([]byte(in))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Thumbprint is the RFC 7638 thumbprint of a public key (the kid a key
// gets when none is configured).
func Thumbprint(pub crypto.PublicKey) string { return publicJWK(pub).thumbprint() }
