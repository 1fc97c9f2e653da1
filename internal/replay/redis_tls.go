package replay

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/embedgate/embedgate/internal/trustfile"
)

// RedisTLS names the PEM files for TLS to Redis. The same settings apply
// to a single server, the sentinels and data nodes of a Sentinel
// deployment, and every node of a Cluster.
type RedisTLS struct {
	// CAFile holds the CAs that sign the servers' certificates; empty: the
	// system roots.
	CAFile string
	// CertFile and KeyFile are a client certificate and its key, for
	// servers that require one (tls-auth-clients yes); both or neither.
	CertFile, KeyFile string
	// ServerName is checked against the servers' certificates; empty: the
	// URL's host.
	ServerName string
}

// Load reads and checks the files (no network I/O) and returns the TLS
// config and a digest of the files' contents, so that a config reload after
// a certificate was renewed can tell the settings apart.
func (c RedisTLS) Load() (*tls.Config, string, error) {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, "", errors.New("tls: cert and key go together: give both or neither")
	}
	h := sha256.New()
	h.Write([]byte(c.ServerName + "\x00"))
	cfg := &tls.Config{ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pemCA, err := trustfile.Read(c.CAFile, trustfile.MaxKeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("tls: ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemCA) {
			return nil, "", fmt.Errorf("tls: ca %q: no PEM certificate in it", c.CAFile)
		}
		cfg.RootCAs = pool
		h.Write(pemCA)
	}
	if c.CertFile != "" {
		certPEM, err := trustfile.Read(c.CertFile, trustfile.MaxKeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("tls: cert: %w", err)
		}
		keyPEM, err := trustfile.Read(c.KeyFile, trustfile.MaxKeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("tls: key: %w", err)
		}
		// X509KeyPair's errors name what is wrong, never the key itself.
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, "", fmt.Errorf("tls: cert %q and key %q: %w", c.CertFile, c.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
		h.Write(certPEM)
		h.Write(keyPEM)
	}
	return cfg, hex.EncodeToString(h.Sum(nil)[:12]), nil
}
