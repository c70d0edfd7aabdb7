package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// ServerFiles is a [rule.tls] table as plain values: what a terminating
// side is built from.
type ServerFiles struct {
	// Certificates are the pairs served; the first whose names match the
	// client's server name is chosen, the first of all when none does.
	Certificates []CertKey
	MinVersion   uint16   // tls.VersionTLS12 or tls.VersionTLS13; zero: 1.2
	ALPN         []string // protocols offered to clients; empty: none
	ClientCA     string   // file of CA certificates clients must be signed by; empty: none asked
}

// Server is the terminating side of one rule or route, its files read
// once. It is immutable; a reload builds a new one (see Holder).
type Server struct {
	certs  []tls.Certificate           // in config order, each with its Leaf
	byName map[string]*tls.Certificate // lower-case DNS name or "*.domain" → first pair that lists it
	expiry []Expiry
	config *tls.Config
}

// Expiry is when one served certificate runs out.
type Expiry struct {
	Name     string // the certificate's first DNS name, else its subject's common name
	NotAfter time.Time
}

// LoadServer reads every certificate and key of f, and its client CA file,
// and returns the Server they make. An error names the file and what is
// wrong with it: unreadable, no PEM in it, a key that does not match its
// certificate. An expired certificate is no error (see Expiry).
func LoadServer(f ServerFiles) (*Server, error) {
	if len(f.Certificates) == 0 {
		return nil, fmt.Errorf("no certificate")
	}
	s := &Server{byName: make(map[string]*tls.Certificate)}
	for _, p := range f.Certificates {
		pair, _, err := loadPair(p)
		if err != nil {
			return nil, err
		}
		s.certs = append(s.certs, pair)
	}
	for i := range s.certs {
		s.index(&s.certs[i])
	}
	s.config = &tls.Config{
		GetCertificate: s.certificate,
		MinVersion:     max(f.MinVersion, tls.VersionTLS12),
		NextProtos:     f.ALPN,
	}
	if f.ClientCA != "" {
		pool, _, err := loadPool("client CA", f.ClientCA)
		if err != nil {
			return nil, err
		}
		s.config.ClientAuth = tls.RequireAndVerifyClientCert
		s.config.ClientCAs = pool
	}
	return s, nil
}

// index lists c under each of its DNS names not taken by an earlier pair,
// and records its expiry.
func (s *Server) index(c *tls.Certificate) {
	leaf := c.Leaf
	for _, name := range leaf.DNSNames {
		name = strings.ToLower(name)
		if _, taken := s.byName[name]; !taken {
			s.byName[name] = c
		}
	}
	s.expiry = append(s.expiry, Expiry{Name: certName(leaf), NotAfter: leaf.NotAfter})
}

// certName names a certificate for people: its first DNS name, else its
// subject's common name.
func certName(leaf *x509.Certificate) string {
	if len(leaf.DNSNames) > 0 {
		return leaf.DNSNames[0]
	}
	return leaf.Subject.CommonName
}

// certificate chooses the pair for a handshake by the client's server
// name: a pair that lists the name, else one whose wildcard covers its
// first label, else the first pair (also when the client sent no name).
func (s *Server) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if c, ok := s.byName[name]; ok {
		return c, nil
	}
	if _, rest, ok := strings.Cut(name, "."); ok && rest != "" {
		if c, ok := s.byName["*."+rest]; ok {
			return c, nil
		}
	}
	return &s.certs[0], nil
}

// Config returns the server configuration of s: its certificates by server
// name, minimum version, ALPN protocols and, with a client CA, required
// client certificates. Session tickets are on, their keys rotated by
// crypto/tls. The caller must not modify it.
func (s *Server) Config() *tls.Config { return s.config }

// Expiry returns when each certificate runs out, in config order.
func (s *Server) Expiry() []Expiry { return append([]Expiry(nil), s.expiry...) }

// Holder holds the Server in force for a listener, so that a reload can
// swap in a new one: Config's tls.Config, given to a listener once, serves
// each new handshake with the Server held then; live connections keep the
// one they began with. Session tickets stay valid across swaps (their keys
// are the Holder's). It is safe for concurrent use.
type Holder struct {
	cur    atomic.Pointer[Server]
	config *tls.Config
}

// NewHolder returns a Holder of s.
func NewHolder(s *Server) *Holder {
	h := &Holder{}
	h.cur.Store(s)
	h.config = &tls.Config{
		// The ClientHello is read with this config, then the one returned
		// takes over; its ticket keys are this config's, rotated by
		// crypto/tls.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return h.cur.Load().config, nil
		},
	}
	return h
}

// Swap makes s the Server for new handshakes.
func (h *Holder) Swap(s *Server) { h.cur.Store(s) }

// Server returns the Server in force.
func (h *Holder) Server() *Server { return h.cur.Load() }

// Config returns the configuration to serve with: each handshake gets the
// Server in force when it starts. The caller must not modify it.
func (h *Holder) Config() *tls.Config { return h.config }
