package backend

import (
	"context"
	"crypto/tls"
	"net"
	"time"

	"sluice/internal/tlsconf"
)

// handshake makes conn, just connected to b (and given its PROXY header),
// a TLS client connection of the pool's and completes the handshake
// within ctx and conn's deadline. observe, if not nil, is told the result
// and duration. A failure, worded as a *net.OpError whose Op is "tls
// handshake", leaves conn for the caller to close.
func (p *Pool) handshake(ctx context.Context, conn net.Conn, b *Backend, observe func(string, time.Duration)) (net.Conn, error) {
	tc := tls.Client(conn, p.tls.For(tlsHost(b.cfg.Address)))
	began := time.Now()
	err := tc.HandshakeContext(ctx)
	result := tlsconf.Result(err)
	if observe != nil {
		observe(result, time.Since(began))
	}
	if err != nil {
		p.logger.Warn("backend TLS handshake failed", "rule", p.rule, "backend", b.cfg.Address.String(), "result", result, "error", err)
		return nil, &net.OpError{Op: "tls handshake", Net: conn.RemoteAddr().Network(), Addr: conn.RemoteAddr(), Err: err}
	}
	return tc, nil
}

// tlsHost is the host a backend's certificate is verified for when the
// rule names no server_name: its host name or IP address as configured
// (an empty host means 127.0.0.1, as for connecting; a unix path has
// none).
func tlsHost(a Address) string {
	if a.Network == "tcp" && a.Host == "" {
		return "127.0.0.1"
	}
	return a.Host
}
