package tenant

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// Every PEM encoding a key is read from, public and private: each parses on
// its own side with the algorithm pinned, is refused on the other side with
// that side's words, and a garbled body is a parse error naming the side.
func TestPEMKeyBlocksBothSides(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkix8, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"}, NotAfter: time.Now().Add(time.Hour)}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecKey.PublicKey, ecKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		typ     string
		der     []byte
		private bool
		alg     string
	}{
		{"PUBLIC KEY", pkix8, false, ES256},
		{"RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey), false, RS256},
		{"CERTIFICATE", cert, false, ES256},
		{"PRIVATE KEY", pkcs8, true, ES256},
		{"RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey), true, RS256},
		{"EC PRIVATE KEY", sec1, true, ES256},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			block := &pem.Block{Type: tc.typ, Bytes: tc.der}
			garbled := &pem.Block{Type: tc.typ, Bytes: []byte{0x30, 0x01}}
			pubKey, pubErr := ParsePublicKeyPEM(pem.EncodeToMemory(block))
			_, privAlg, privErr := ParsePrivateKeyPEM(block)
			_, garbledPub := ParsePublicKeyPEM(pem.EncodeToMemory(garbled))
			_, _, garbledPriv := ParsePrivateKeyPEM(garbled)
			if tc.private {
				if privErr != nil || privAlg != tc.alg {
					t.Fatalf("private: %s, %v; want %s", privAlg, privErr, tc.alg)
				}
				if pubErr == nil || pubErr.Error() != "this is a private key; give the gateway the public key only" {
					t.Fatalf("as a public key: %v", pubErr)
				}
				if garbledPriv == nil || !strings.HasPrefix(garbledPriv.Error(), "parsing private key: ") {
					t.Fatalf("garbled: %v", garbledPriv)
				}
				return
			}
			if pubErr != nil || pubKey.Alg != tc.alg {
				t.Fatalf("public: %s, %v; want %s", pubKey.Alg, pubErr, tc.alg)
			}
			if want := `PEM block "` + tc.typ + `" is not a private key`; privErr == nil || privErr.Error() != want {
				t.Fatalf("as a private key: %v, want %s", privErr, want)
			}
			if garbledPub == nil || !strings.HasPrefix(garbledPub.Error(), "parsing public key: ") {
				t.Fatalf("garbled: %v", garbledPub)
			}
		})
	}
	_, err = ParsePublicKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "OPENSSH KEY", Bytes: []byte{1}}))
	if want := `unsupported PEM block "OPENSSH KEY" (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)`; err == nil || err.Error() != want {
		t.Fatalf("unknown block: %v, want %s", err, want)
	}
}
