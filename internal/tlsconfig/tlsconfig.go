// Package tlsconfig builds the client TLS configuration of a connection (the Kafka brokers,
// the search server) from a PEM CA bundle, client certificate and key, given in memory (the
// operator reads them from Secrets) or as files (a consumer pod mounts them).
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// PEM is the PEM material of a TLS client. Each part is optional: without CA the system
// roots verify the server; Cert and Key go together.
type PEM struct {
	CA, Cert, Key []byte
}

// Files names the PEM files of a TLS client; empty names are skipped.
type Files struct {
	CA, Cert, Key string
}

// Read reads the named files; what ("Kafka", "search server") says whose they are in errors.
func (f Files) Read(what string) (PEM, error) {
	var p PEM
	for _, part := range []struct {
		name, file string
		into       *[]byte
	}{{"CA file", f.CA, &p.CA}, {"client certificate", f.Cert, &p.Cert}, {"client key", f.Key, &p.Key}} {
		if part.file == "" {
			continue
		}
		b, err := os.ReadFile(part.file)
		if err != nil {
			return PEM{}, fmt.Errorf("read %s %s: %w", what, part.name, err)
		}
		*part.into = b
	}
	return p, nil
}

// Client returns the TLS configuration of a client trusting p.CA (or the system roots) and
// presenting p.Cert when given. insecureSkipVerify turns server verification off (callers
// warn loudly when it is on).
func Client(p PEM, insecureSkipVerify bool, what string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecureSkipVerify} //nolint:gosec // only when asked, with a warning
	if len(p.CA) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(p.CA) {
			return nil, fmt.Errorf("the %s CA bundle holds no PEM certificate", what)
		}
		cfg.RootCAs = pool
	}
	if (len(p.Cert) == 0) != (len(p.Key) == 0) {
		return nil, errors.New("a " + what + " client certificate needs its key, and a key its certificate")
	}
	if len(p.Cert) > 0 {
		cert, err := tls.X509KeyPair(p.Cert, p.Key)
		if err != nil {
			return nil, fmt.Errorf("load %s client certificate: %w", what, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
