// Package tlsconf turns the TLS tables of a rule into crypto/tls
// configurations: the terminating side (certificates chosen by the
// client's server name, client certificates, ALPN, session tickets) and
// the side that speaks TLS to backends (roots, server name, a client
// certificate). Files are read when a Server or Client is made, so a
// reload makes new ones; a Holder swaps a new Server in for the next
// handshakes while a tls.Config handed out once keeps working.
//
// The package imports nothing of sluice's own, so that the connection
// path (tcp, backend) may use it; its inputs are the config's tables as
// plain values (ServerFiles, ClientFiles).
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// CertKey is one certificate and its private key, as PEM file paths (the
// same fields as config.CertKey, so one converts to the other).
type CertKey struct {
	Cert string
	Key  string
}

// readFile reads the file at path, naming it and what it holds (what) in
// the error.
func readFile(what, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s file %s: cannot read it: %w", what, path, err)
	}
	return b, nil
}

// loadPair reads a certificate chain and its key and checks that they
// belong together. Errors name the file at fault.
func loadPair(p CertKey) (tls.Certificate, []byte, error) {
	certPEM, err := readFile("certificate", p.Cert)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	if !hasBlock(certPEM, "CERTIFICATE") {
		return tls.Certificate{}, nil, fmt.Errorf("certificate file %s: no PEM certificate in it", p.Cert)
	}
	keyPEM, err := readFile("key", p.Key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	if !hasKeyBlock(keyPEM) {
		return tls.Certificate{}, nil, fmt.Errorf("key file %s: no PEM private key in it", p.Key)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("certificate file %s with key file %s: %w", p.Cert, p.Key, err)
	}
	return pair, append(certPEM, keyPEM...), nil
}

// loadPool reads a file of PEM CA certificates into a pool.
func loadPool(what, path string) (*x509.CertPool, []byte, error) {
	b, err := readFile(what, path)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, nil, fmt.Errorf("%s file %s: no PEM certificate in it", what, path)
	}
	return pool, b, nil
}

// hasBlock reports whether b holds a PEM block of the given type.
func hasBlock(b []byte, typ string) bool {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return false
		}
		if block.Type == typ {
			return true
		}
	}
}

// hasKeyBlock reports whether b holds a PEM private key of a kind
// tls.X509KeyPair reads.
func hasKeyBlock(b []byte) bool {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return false
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			return true
		}
	}
}
