package tcp

import (
	"errors"
	"time"

	"sluice/internal/access"
	"sluice/internal/backend"
	"sluice/internal/proxyproto"
	"sluice/internal/relay"
)

// The dial step of a connection. Its conversation with the backends (pick,
// socket, connect, prelude, next attempt) is backend.Attempts, which the
// connection holds; the PROXY header, when the rule sends one, is the
// attempts' prelude, written to each backend once connected and before any
// of the client's bytes, on both paths:
//
//   - on the net package's path a goroutine runs the attempts with blocking
//     dials (dial, below), then starts the relay;
//   - on the direct path the relay starts at once, on the engine, with the
//     first backend socket still connecting (connect, in direct_linux.go);
//     the engine's loop tells the connection, its relay.Dialer, how each
//     connect went (Connected, Failed).

// beginDial readies cn's attempts at a backend. The route step's replay
// (the client's first bytes, which its socket no longer holds) goes before
// anything else the client sends: written by the relay as its first bytes
// up when relayFirst (the direct path: relay.Connecting.First), else as
// the attempts' replay, after the PROXY header (inside TLS when the pool
// speaks TLS to its backends).
func (cn *conn) beginDial(relayFirst bool) {
	var prelude []byte
	if v := cn.sendProxy(); v != 0 {
		prelude = proxyHeader(v, cn)
	}
	var replay []byte
	if !relayFirst {
		replay = cn.replay()
	}
	cn.pool().Begin(&cn.attempts, cn.client.Addr(), prelude, replay)
	cn.attempts.AtPort(cn.rule.portIndex(cn.port))
	cn.began = time.Now()
}

// dial connects to a backend (with retries on the next one) and starts the
// relay.
func (s *Service) dial(cn *conn) {
	cn.beginDial(false)
	up, b, err := cn.attempts.Dial(s.ctx)
	if errors.Is(err, backend.ErrFull) { // see queue.go
		if !s.queueNet(cn) {
			return
		}
		up, b, err = cn.attempts.Dial(s.ctx)
	}
	if err != nil {
		cn.c.Close()
		s.finish(cn, relay.Result{End: access.ConnectFailed, Err: err})
		return
	}
	cn.connected(b)
	cn.relay = relay.New(cn.c, up, s.relayOptions(cn))
	s.track(cn, b)
	s.setupDone(cn)
	s.run(cn)
}

// Connected is told on the engine's loop that the backend socket fd has
// connected (see relay.Dialer): the attempts write the prelude, and the
// connection is listed with its backend.
func (cn *conn) Connected(fd int) error {
	b, err := cn.attempts.Connected(fd)
	if err != nil {
		return err
	}
	cn.connected(b)
	cn.entry.SetBackend(b.Address().String(), b.Tally())
	return nil
}

// Failed is told on the engine's loop that the connect to the current
// backend failed (see relay.Dialer), and returns the next backend's
// socket, or the error that ends the connection.
func (cn *conn) Failed(err error) (int, error) {
	return cn.attempts.Failed(err)
}

// connected records that cn's backend is b, connected.
func (cn *conn) connected(b *backend.Backend) {
	cn.rule.Metrics.ConnectDuration(time.Since(cn.began))
	cn.backend = b
}

// proxyHeader returns the PROXY header that tells a backend about cn, in
// version.
func proxyHeader(version int, cn *conn) []byte {
	h := proxyproto.Header{Command: proxyproto.Proxy, Transport: proxyproto.TCP, Source: cn.client, Destination: cn.local}
	if !cn.client.IsValid() || !cn.local.IsValid() {
		h = proxyproto.Header{} // a unix-socket client: LOCAL, no addresses
	}
	if version == 1 {
		return h.AppendV1(nil)
	}
	return h.AppendV2(nil)
}
