package tlsconf

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"sluice/internal/testkit/testca"
)

// waitLimit bounds every network wait in these tests.
const waitLimit = 10 * time.Second

// serve accepts TLS connections on loopback with cfg; each connection
// completes its handshake, writes "hello", then echoes until EOF.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(waitLimit))
				if _, err := c.Write([]byte("hello")); err != nil {
					return
				}
				buf := make([]byte, 512)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					c.Write(buf[:n])
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// handshake connects to addr with cfg, completes the handshake, reads the
// server's greeting (so that a TLS 1.3 ticket is taken in) and returns the
// connection's state. The connection is closed when the test ends.
func handshake(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	d := &net.Dialer{Timeout: waitLimit}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitLimit))
	buf := make([]byte, 5)
	if _, err := c.Read(buf); err != nil {
		return nil, err
	}
	return c, nil
}

// serial returns the serial number of the certificate the server showed.
func serial(c *tls.Conn) int64 {
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// timeNowPlus returns the time ms milliseconds from now.
func timeNowPlus(ms int) time.Time { return time.Now().Add(time.Duration(ms) * time.Millisecond) }

// pairOf returns the files of l as a CertKey.
func pairOf(l testca.Leaf) CertKey { return CertKey{Cert: l.CertFile, Key: l.KeyFile} }
