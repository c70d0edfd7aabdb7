package tcp

import (
	"cmp"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"sluice/internal/access"
	"sluice/internal/backend"
	"sluice/internal/relay"
	"sluice/internal/route"
	"sluice/internal/sniff"
	"sluice/internal/tlsconf"
)

// The route step of a routed rule's connection, between admission and the
// dial: read and replay. The client is not dialed at once; its first bytes
// are read into the connection's buffer (at most route.MaxPeek) until the
// rule's route.Table decides, and then go to the chosen route's backend
// before anything else the client sends (see beginDial). From there
// the connection is a plain one: the relay, on the engine where the route's
// pool allows it, knows of the step only the bytes it writes first.
//
// On the direct path the client socket waits for its bytes in the parker's
// epoll set (relay.Parker.Await), holding no goroutine: each wake-up reads
// what is there without blocking, judges, and waits again if the bytes do
// not decide yet (peek_linux.go). On the net package's path a goroutine
// reads with a deadline (peekConn). Both stop at the rule's peek timeout,
// counted from accept: a client that sent nothing by then takes the
// default route (server-speaks-first protocols), or is refused
// (rejected:peek-timeout) when there is none; one that sent bytes that
// decide nothing is judged as it stands (no route: the default route, or
// rejected:no-route).

// Route is one route of a TCP rule: the backend side its clients take.
type Route struct {
	Name      string
	Pool      *backend.Pool   // its connect timeout also bounds writing the prelude
	SendProxy int             // PROXY protocol version sent to its backends; 0: none
	TLS       *tlsconf.Holder // terminates TLS for its clients (see terminate.go); nil: passthrough
}

// DefaultPeekTimeout bounds the wait for a routed rule's client to choose
// its route, counted from accept.
const DefaultPeekTimeout = 3 * time.Second

// peekTimeout returns the rule's peek timeout.
func (r *Rule) peekTimeout() time.Duration {
	return cmp.Or(r.PeekTimeout, DefaultPeekTimeout)
}

// routed reports whether the rule chooses routes by its clients' bytes.
func (r *Rule) routed() bool { return r.Table != nil }

// peekBuffer is the first size of a connection's peek buffer: a ClientHello
// with a post-quantum key share (about 1.8 KB) fits. It doubles, up to
// route.MaxPeek, while the bytes do not decide.
const peekBuffer = 2 << 10

// routing is what a routed connection learnt choosing its route, and
// what a terminated one learnt of its TLS session (see terminate.go).
type routing struct {
	route  *Route      // the chosen route; nil: the rule's own backends
	name   string      // the chosen route's name, for the access line; empty: none chosen
	peeked []byte      // the client's first bytes, replayed to the backend
	seen   sniff.Hello // the ClientHello, when one was read
	silent bool        // the peek timeout passed with no byte read
	// tlsVersion and tlsCipher describe the session sluice terminated:
	// "1.3", "TLS_AES_128_GCM_SHA256"; empty: none.
	tlsVersion, tlsCipher string
}

// pool returns the pool cn's backends come from.
func (cn *conn) pool() *backend.Pool {
	if cn.rt != nil && cn.rt.route != nil {
		return cn.rt.route.Pool
	}
	return cn.rule.Pool
}

// sendProxy returns the PROXY protocol version cn's backend is sent.
func (cn *conn) sendProxy() int {
	if cn.rt != nil && cn.rt.route != nil {
		return cn.rt.route.SendProxy
	}
	return cn.rule.SendProxy
}

// replay returns the client's first bytes that the route step read, to go
// to the backend first; nil without one.
func (cn *conn) replay() []byte {
	if cn.rt == nil {
		return nil
	}
	return cn.rt.peeked
}

// peekRoom returns the free end of the peek buffer, grown when full: the
// first one of peekBuffer bytes comes from bufs.
func (rt *routing) peekRoom(bufs *peekBuffers) []byte {
	if rt.peeked == nil {
		rt.peeked = bufs.get()
	}
	if len(rt.peeked) == cap(rt.peeked) {
		grown := make([]byte, len(rt.peeked), min(max(2*cap(rt.peeked), peekBuffer), route.MaxPeek))
		copy(grown, rt.peeked)
		rt.peeked = grown
	}
	return rt.peeked[len(rt.peeked):cap(rt.peeked)]
}

// handOver returns the bytes read, in a slice of their own length for
// whoever writes them to the backend, and gives the peek buffer back to
// bufs: a connection keeps no read buffer, and the garbage it leaves is
// the size of what its client sent first, not of the buffer.
func (rt *routing) handOver(bufs *peekBuffers) []byte {
	if len(rt.peeked) == 0 {
		return nil
	}
	out := append([]byte(nil), rt.peeked...)
	bufs.put(rt.peeked)
	rt.peeked = nil
	return out
}

// peekBuffers are the first peek buffers of a service's routed
// connections, reused: most clients decide their route with what fits in
// one.
type peekBuffers struct{ pool sync.Pool }

// get returns an empty buffer of peekBuffer bytes' capacity.
func (b *peekBuffers) get() []byte {
	if p, ok := b.pool.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, peekBuffer)
}

// put keeps buf for another connection, if it is one of get's.
func (b *peekBuffers) put(buf []byte) {
	if cap(buf) == peekBuffer {
		buf = buf[:0]
		b.pool.Put(&buf)
	}
}

// judge lets the rule's table judge the bytes read so far, atEOF when no
// more will come, and reports whether they decided; if so, the route is
// chosen (see choose).
func (rt *routing) judge(rule *Rule, atEOF bool) bool {
	v := rule.Table.Judge(rt.peeked, atEOF)
	if v.Route == route.NeedMore {
		return false
	}
	rt.seen = v.Hello
	rt.choose(rule, v.Route)
	return true
}

// choose makes the route with index i the chosen one; route.NoRoute the
// default route, if the rule has one.
func (rt *routing) choose(rule *Rule, i int) {
	if i >= 0 {
		rt.route = &rule.Routes[i]
		rt.name = rt.route.Name
		return
	}
	if rule.Pool != nil {
		rt.name = access.DefaultRoute
	}
}

// timedOut chooses the route once its peek timeout has passed: the
// bytes read so far as they stand, and the default route for a client
// that sent nothing.
func (rt *routing) timedOut(rule *Rule) {
	if len(rt.peeked) == 0 {
		rt.silent = true
		rt.choose(rule, route.NoRoute)
		return
	}
	rt.judge(rule, true)
}

// refusal returns why the client, its wait over, has no route to take: "" when it
// has one.
func (rt *routing) refusal() access.Reason {
	switch {
	case rt.name != "":
		return ""
	case rt.silent:
		return access.ReasonPeekTimeout
	}
	return access.ReasonNoRoute
}

// peekConn reads a routed client's first bytes on the net package's path,
// on the connection's goroutine, until they choose a route or the peek
// timeout from accept has passed, and reports whether the client has a
// route to take; if not it has been refused or ended.
func (s *Service) peekConn(cn *conn) bool {
	cn.c.SetReadDeadline(cn.start.Add(cn.rule.peekTimeout()))
	defer cn.c.SetReadDeadline(time.Time{})
	if cn.rt == nil {
		cn.rt = &routing{}
	}
	rt := cn.rt
	for {
		n, err := cn.c.Read(rt.peekRoom(&s.peekBufs))
		rt.peeked = rt.peeked[:len(rt.peeked)+n]
		switch {
		case err == nil:
			if rt.judge(cn.rule, false) {
				return s.routeOrRefuse(cn)
			}
		case err == io.EOF:
			rt.judge(cn.rule, true)
			return s.routeOrRefuse(cn)
		case errors.Is(err, os.ErrDeadlineExceeded):
			rt.timedOut(cn.rule)
			return s.routeOrRefuse(cn)
		default:
			cn.c.Close()
			s.finish(cn, relay.Result{End: access.Reset, Err: err})
			return false
		}
	}
}

// routeOrRefuse refuses cn when its wait chose no route it can take, and
// reports whether it has one, counted in the route's metrics.
func (s *Service) routeOrRefuse(cn *conn) bool {
	if reason := cn.rt.refusal(); reason != "" {
		s.reject(cn, reason, nil)
		return false
	}
	cn.rule.Metrics.Routed(cn.rt.name)
	return true
}

// awaitPeek readies a routed client of the net package's path for its
// route step: its socket waits in the parker's set until it has bytes (or
// its time is up), holding no goroutine, and then a goroutine reads and
// judges them (peekConn) and, holding a setup slot, dials the route.
func (s *Service) awaitPeek(cn *conn) {
	read := func() {
		if s.peekConn(cn) && (cn.terminator() == nil || s.handshake(cn)) {
			s.takeSetup(cn)
			s.dial(cn)
		}
	}
	if p := s.deps.Parker; p != nil {
		if rc := syscallConn(cn.c); rc != nil && p.Await(rc, cn.rule.peekTimeout(), func() { s.spawn(read) }) {
			return
		}
	}
	s.spawn(read)
}
