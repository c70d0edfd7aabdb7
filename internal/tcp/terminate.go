package tcp

import (
	"crypto/tls"
	"net"
	"time"

	"sluice/internal/access"
	"sluice/internal/metrics"
	"sluice/internal/tlsconf"
)

// The termination step of a connection whose rule (or chosen route) has a
// [tls] table: after admission and the route step, before the dial. The
// client's socket first waits for bytes in the parker's set, holding no
// goroutine (unless the route step read some already); then, on a
// goroutine of the net package's path, crypto/tls runs the handshake over
// the client connection with the route step's bytes replayed first. It is
// bounded by the rule's peek timeout, counted from accept, like the route
// step. A failed handshake ends the connection (rejected:tls-handshake);
// a finished one goes on as any connection does, with the decrypted
// *tls.Conn as its client side: the replay is the handshake's, so nothing
// is replayed to the backend.

// terminator returns the TLS server of cn's route (the rule's own for a
// rule without routes or its default route); nil: cn's bytes pass through.
func (cn *conn) terminator() *tlsconf.Holder {
	if cn.rt != nil && cn.rt.route != nil {
		return cn.rt.route.TLS
	}
	return cn.rule.TLS
}

// awaitHandshake readies a terminating client of the net package's path:
// its socket waits in the parker's set for its first bytes (or the end of
// its peek timeout), holding no goroutine, unless the route step read some
// already; then a goroutine runs the handshake and, holding a setup slot,
// dials.
func (s *Service) awaitHandshake(cn *conn) {
	run := func() {
		if s.handshake(cn) {
			s.takeSetup(cn)
			s.dial(cn)
		}
	}
	if p := s.deps.Parker; p != nil && len(cn.replay()) == 0 {
		wait := max(time.Until(cn.start.Add(cn.rule.peekTimeout())), 0)
		if rc := syscallConn(cn.c); rc != nil && p.Await(rc, wait, func() { s.spawn(run) }) {
			return
		}
	}
	s.spawn(run)
}

// handshake terminates TLS for cn, on cn's goroutine, and reports whether
// it succeeded; cn.c is then the decrypted connection. A failure refuses
// cn (rejected:tls-handshake, the handshake's error in its access line).
// Either way the handshake is counted in the rule's metrics.
func (s *Service) handshake(cn *conn) bool {
	cn.c.SetDeadline(cn.start.Add(cn.rule.peekTimeout()))
	tc := tls.Server(&replayConn{Conn: cn.c, first: cn.replay()}, cn.terminator().Config())
	began := time.Now()
	err := tc.HandshakeContext(s.ctx)
	cn.rule.Metrics.TLSHandshake(metrics.SideClient, tlsconf.Result(err), time.Since(began))
	if err != nil {
		s.reject(cn, access.ReasonTLSHandshake, err)
		return false
	}
	cn.c.SetDeadline(time.Time{})
	if cn.rt == nil {
		cn.rt = &routing{}
	}
	cn.rt.terminated(tc.ConnectionState())
	cn.c = tc
	return true
}

// terminated records the TLS session of a terminated connection, for its
// access line, and lets go of the route step's bytes, which the handshake
// consumed.
func (rt *routing) terminated(st tls.ConnectionState) {
	rt.peeked = nil
	rt.tlsVersion = tlsVersion(st.Version)
	rt.tlsCipher = tls.CipherSuiteName(st.CipherSuite)
	if rt.seen.ServerName == "" {
		rt.seen.ServerName = st.ServerName
	}
}

// tlsVersion names a TLS version as access lines write it: "1.2", "1.3".
func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "1.3"
	case tls.VersionTLS12:
		return "1.2"
	}
	return tls.VersionName(v)
}

// replayConn is a client connection whose Read returns the bytes the
// route step read first, then the connection's own.
type replayConn struct {
	net.Conn
	first []byte
}

// Read reads the replayed bytes first, then from the connection.
func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.first) > 0 {
		n := copy(b, c.first)
		c.first = c.first[n:]
		if len(c.first) == 0 {
			c.first = nil
		}
		return n, nil
	}
	return c.Conn.Read(b)
}
