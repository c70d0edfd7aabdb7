package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
)

// ClientFiles is a [rule.backend_tls] table as plain values (the same
// fields as config.BackendTLS, so one converts to the other).
type ClientFiles struct {
	CA                 string // file of CA certificates; empty: the system's roots
	ServerName         string // name verified and sent as SNI; empty: the backend's host
	Cert, Key          string // client certificate files; empty: none
	InsecureSkipVerify bool
}

// clientSessions is how many backend sessions a Client keeps for
// resumption.
const clientSessions = 256

// Client is the side that speaks TLS to a rule's backends, its files read
// once. It is safe for concurrent use; a reload builds a new one.
type Client struct {
	files  ClientFiles
	digest [sha256.Size]byte // of the files' contents, for Equal
	base   *tls.Config
}

// NewClient reads the CA file of f (none: the system's roots are used)
// and its client certificate and key, and returns the Client they make.
// An error names the file and what is wrong with it.
func NewClient(f ClientFiles) (*Client, error) {
	c := &Client{files: f, base: &tls.Config{
		InsecureSkipVerify: f.InsecureSkipVerify,
		ClientSessionCache: tls.NewLRUClientSessionCache(clientSessions),
	}}
	h := sha256.New()
	if f.CA != "" {
		pool, b, err := loadPool("CA", f.CA)
		if err != nil {
			return nil, err
		}
		c.base.RootCAs = pool
		h.Write(b)
	}
	if f.Cert != "" || f.Key != "" {
		pair, b, err := loadPair(CertKey{Cert: f.Cert, Key: f.Key})
		if err != nil {
			return nil, err
		}
		c.base.Certificates = []tls.Certificate{pair}
		h.Write(b)
	}
	h.Sum(c.digest[:0])
	return c, nil
}

// For returns the configuration for a handshake with a backend whose host
// is host (a name or an IP address): the server name verified and sent is
// the configured one, else host (an IP address is verified against the
// certificate's IP addresses, and sent as no server name).
func (c *Client) For(host string) *tls.Config {
	cfg := c.base.Clone()
	cfg.ServerName = host
	if c.files.ServerName != "" {
		cfg.ServerName = c.files.ServerName
	}
	return cfg
}

// Equal reports whether c and o were made from the same settings and the
// same file contents, so that their handshakes are the same. Nil Clients
// are equal to each other only.
func (c *Client) Equal(o *Client) bool {
	if c == nil || o == nil {
		return c == o
	}
	return c.files == o.files && c.digest == o.digest
}
