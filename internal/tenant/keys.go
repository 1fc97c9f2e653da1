package tenant

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/embedgate/embedgate/internal/trustfile"
)

// MinRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
const MinRSABits = 2048

// loadPublicKey reads a PEM public key (PKIX, PKCS#1 or a certificate) and
// pins its algorithm by key type.
func loadPublicKey(p PublicKeyConfig) (Key, error) {
	data := []byte(p.PEM)
	if p.File != "" {
		if p.PEM != "" {
			return Key{}, fmt.Errorf("set file or pem, not both")
		}
		var err error
		if data, err = trustfile.Read(p.File, trustfile.MaxKeyFile); err != nil {
			return Key{}, fmt.Errorf("reading key file: %w", err)
		}
	}
	if len(data) == 0 {
		return Key{}, fmt.Errorf("no key: set file or pem")
	}
	key, err := ParsePublicKeyPEM(data)
	if err != nil {
		if p.File != "" {
			return Key{}, fmt.Errorf("%s: %w", p.File, err)
		}
		return Key{}, err
	}
	key.KID = p.KID
	return key, nil
}

// ParsePublicKeyPEM parses one PEM block and returns the key with its pinned
// algorithm: RSA (>= 2048 bits) → RS256, P-256 → ES256, Ed25519 → EdDSA.
func ParsePublicKeyPEM(data []byte) (Key, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return Key{}, fmt.Errorf("no PEM block found")
	}
	pub, err := parseKeyBlock(block, "public")
	if errors.Is(err, errNotKeyBlock) {
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			return Key{}, fmt.Errorf("this is a private key; give the gateway the public key only")
		}
		return Key{}, fmt.Errorf("unsupported PEM block %q (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)", block.Type)
	}
	if err != nil {
		return Key{}, err
	}
	return AcceptPublicKey(pub)
}

// AcceptPublicKey is the one rule for which keys verify tokens, and with
// which algorithm, pinned by key type: RSA of at least MinRSABits → RS256,
// P-256 → ES256, Ed25519 → EdDSA. PEM files, JWKS, the verifier and the
// CLI's signing keys all go through it: accepting a new algorithm is one
// edit here.
func AcceptPublicKey(pub any) (Key, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return Key{}, fmt.Errorf("RSA key is %d bits, at least %d required", k.N.BitLen(), MinRSABits)
		}
		return Key{Alg: RS256, Public: k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return Key{}, fmt.Errorf("ECDSA curve %s is not supported (ES256 needs P-256)", k.Curve.Params().Name)
		}
		return Key{Alg: ES256, Public: k}, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return Key{}, fmt.Errorf("Ed25519 key is %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		return Key{Alg: EdDSA, Public: k}, nil
	default:
		return Key{}, fmt.Errorf("unsupported key type %T", pub)
	}
}

// ParsePrivateKeyPEM reads a private key (PKCS#8, PKCS#1 or SEC1) from one
// decoded PEM block and pins its algorithm as AcceptPrivateKey does: the
// signing twin of ParsePublicKeyPEM, for the CLI that mints tokens.
func ParsePrivateKeyPEM(block *pem.Block) (crypto.Signer, string, error) {
	priv, err := parseKeyBlock(block, "private")
	if errors.Is(err, errNotKeyBlock) {
		return nil, "", fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, "", err
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, "", fmt.Errorf("unsupported key type %T", priv)
	}
	alg, err := AcceptPrivateKey(signer)
	if err != nil {
		return nil, "", err
	}
	return signer, alg, nil
}

// pemKeyBlock is how the keys of one PEM block type are read.
type pemKeyBlock struct {
	kind  string // "public" or "private"
	parse func(der []byte) (any, error)
}

// pemKeyBlocks are the PEM block types a key is read from, public and
// private: reading another encoding is one row here.
var pemKeyBlocks = map[string]pemKeyBlock{
	"PUBLIC KEY":      {"public", x509.ParsePKIXPublicKey},
	"RSA PUBLIC KEY":  {"public", func(der []byte) (any, error) { return x509.ParsePKCS1PublicKey(der) }},
	"CERTIFICATE":     {"public", certificateKey},
	"PRIVATE KEY":     {"private", x509.ParsePKCS8PrivateKey},
	"RSA PRIVATE KEY": {"private", func(der []byte) (any, error) { return x509.ParsePKCS1PrivateKey(der) }},
	"EC PRIVATE KEY":  {"private", func(der []byte) (any, error) { return x509.ParseECPrivateKey(der) }},
}

// errNotKeyBlock is parseKeyBlock's answer for a block type that holds no
// key of the kind asked for; each caller words it for its own user.
var errNotKeyBlock = errors.New("not a key block")

// parseKeyBlock parses the key of kind ("public" or "private") in block.
func parseKeyBlock(block *pem.Block, kind string) (any, error) {
	b, ok := pemKeyBlocks[block.Type]
	if !ok || b.kind != kind {
		return nil, errNotKeyBlock
	}
	key, err := b.parse(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing %s key: %w", kind, err)
	}
	return key, nil
}

// certificateKey is the public key a DER certificate holds.
func certificateKey(der []byte) (any, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return cert.PublicKey, nil
}

// AcceptPrivateKey is the algorithm a private key signs with, by the rule of
// AcceptPublicKey for its public half.
func AcceptPrivateKey(priv crypto.Signer) (string, error) {
	k, err := AcceptPublicKey(priv.Public())
	return k.Alg, err
}

// Check refuses key material that New would not have accepted: an HS256
// secret under MinSecretLen, or a public key that AcceptPublicKey refuses or
// pins to another algorithm. The verifier calls it, so that a key set built
// some other way cannot weaken verification.
func (k Key) Check() error {
	if k.Alg == HS256 {
		return CheckSecret(k.Secret)
	}
	got, err := AcceptPublicKey(k.Public)
	if err != nil {
		return err
	}
	if got.Alg != k.Alg {
		return fmt.Errorf("a %s key cannot verify %s", got.Alg, k.Alg)
	}
	return nil
}

// CheckSecret refuses what may not be an HS256 secret: one under
// MinSecretLen, and a public key pasted as one (PEM, its base64 body
// without the armour, or a JWK, a leading BOM ignored), which would
// let anyone who holds that public key MAC tokens with its text: the
// HS256/RS256 confusion of RFC 8725 section 2.1, by a config mistake.
func CheckSecret(secret []byte) error {
	if len(secret) < MinSecretLen {
		return fmt.Errorf("secret is %d bytes, at least %d required", len(secret), MinSecretLen)
	}
	if bytes.Contains(secret, []byte("-----BEGIN")) {
		return errors.New("a PEM block is not an HS256 secret: a public key goes under public_key (public_keys in JSON)")
	}
	t := bytes.TrimSpace(bytes.TrimPrefix(bytes.TrimSpace(secret), []byte("\uFEFF")))
	if bytes.HasPrefix(t, []byte("{")) && bytes.Contains(t, []byte(`"kty"`)) {
		return errors.New(`a JWK is not an HS256 secret: a public key goes under public_key or jwks (for an "oct" JWK, the key is its decoded "k")`)
	}
	// A PEM body pasted without its armour: base64 of a public key.
	if der, err := base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields(t), nil))); err == nil {
		if _, err := x509.ParsePKIXPublicKey(der); err == nil {
			return errors.New("a public key (a PEM body without its BEGIN line) is not an HS256 secret: it goes under public_key")
		}
	}
	return nil
}

// addKeys sets the tenant's verification keys from c: secrets, public keys
// and a JWKS URL, at least one of them, kids unique across them all.
func (t *Tenant) addKeys(c Config) error {
	kids := map[string]bool{}
	for i, k := range c.Keys {
		if err := CheckSecret([]byte(k.Secret)); err != nil {
			return fmt.Errorf("tenant %q: key #%d: %w", c.ID, i+1, err)
		}
		if err := addKID(kids, k.KID); err != nil {
			return fmt.Errorf("tenant %q: key #%d: %w", c.ID, i+1, err)
		}
		t.Keys = append(t.Keys, Key{KID: k.KID, Alg: HS256, Secret: []byte(k.Secret)})
	}
	for i, p := range c.PublicKeys {
		key, err := loadPublicKey(p)
		if err != nil {
			return fmt.Errorf("tenant %q: public_key #%d: %w", c.ID, i+1, err)
		}
		if err := addKID(kids, p.KID); err != nil {
			return fmt.Errorf("tenant %q: public_key #%d: %w", c.ID, i+1, err)
		}
		t.Keys = append(t.Keys, key)
	}
	if c.JWKS != "" {
		if err := checkJWKSURL(c.JWKS); err != nil {
			return fmt.Errorf("tenant %q: jwks: %w", c.ID, err)
		}
		t.JWKS = c.JWKS
	}
	if len(t.Keys) == 0 && t.JWKS == "" {
		return fmt.Errorf("tenant %q: no key: add key, public_key or jwks", c.ID)
	}
	return nil
}

// addAPIKeys sets the token API's key digests from c. The token API signs
// with the tenant's first key, so it needs one it can sign with.
func (t *Tenant) addAPIKeys(c Config) error {
	if len(c.APIKeys) > 0 {
		if _, ok := t.SigningKey(); !ok {
			return fmt.Errorf("tenant %q: api_keys: the token API signs with the tenant's first key (HS256); add a key", c.ID)
		}
	}
	for i, h := range c.APIKeys {
		sum, err := ParseAPIKeyHash(h)
		if err != nil {
			return fmt.Errorf("tenant %q: api_keys #%d: %w", c.ID, i+1, err)
		}
		if slices.Contains(t.apiKeys, sum) {
			return fmt.Errorf("tenant %q: api_keys #%d: duplicate digest", c.ID, i+1)
		}
		t.apiKeys = append(t.apiKeys, sum)
	}
	return nil
}
