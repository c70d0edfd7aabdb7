package tcp

import (
	"net"
	"sync/atomic"
	"syscall"

	"sluice/internal/congestion"
)

// listening is one listener of a Service and the congestion control that
// the sockets it accepts inherit from it.
type listening struct {
	ln     net.Listener
	port   uint16      // ln's port; 0 for a unix listener
	direct *loopAccept // the engine's loops accept raw from ln's socket; nil: ln.Accept
	// inherited is the algorithm every socket accepted on ln has from it;
	// nil when that is not known (ln's algorithm changed while clients
	// may have been waiting to be accepted). Only Serve and Update store it.
	inherited atomic.Pointer[string]
	// closed is set when sluice closes ln itself (Service.CloseListeners),
	// so that the accept loop ends quietly: only a listener that fails
	// under it is an error.
	closed atomic.Bool
}

// close closes l's listener as sluice's own doing, once no engine loop
// accepts from its socket any more: its accept loop then ends without an
// error.
func (l *listening) close() {
	l.closed.Store(true)
	if l.direct != nil {
		l.direct.close()
	}
	l.ln.Close()
}

// algorithm returns what every socket accepted on l starts with, or ""
// when that is not known.
func (l *listening) algorithm() string {
	if p := l.inherited.Load(); p != nil {
		return *p
	}
	return ""
}

// raw returns l's socket, or nil (e.g. a unix listener).
func (l *listening) raw() syscall.RawConn {
	tl, ok := l.ln.(*net.TCPListener)
	if !ok {
		return nil
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// startListening reads the algorithm l's socket passes on (the server set
// the rule's on it before it listened) and then fits it to rule.
func startListening(l *listening, rule *Rule) {
	rc := l.raw()
	if rc == nil {
		return
	}
	if name, err := congestion.Get(rc); err == nil && name != "" {
		l.inherited.Store(&name)
	}
	fitListener(l, rule)
}

// fitListener gives l's socket the algorithm that the sockets it accepts
// should start with under rule: the rule's, when every connection gets the
// same one, or else the system's. Changing it makes what earlier clients,
// still waiting to be accepted, inherited unknown: start then sets each
// connection's own from that point on.
func fitListener(l *listening, rule *Rule) {
	rc := l.raw()
	if rc == nil {
		return
	}
	want, uniform := rule.Congestion.ForListener(addrPort(l.ln.Addr()).Addr())
	if !uniform || want == "" {
		want = congestion.SystemDefault()
	}
	if want == "" || want == l.algorithm() {
		return
	}
	l.inherited.Store(nil)
	_ = congestion.Set(rc, want)
}

// setCongestion gives c the congestion control algorithm name, best
// effort: the rule's setting was checked at start, and a connection is no
// worse off with the system's algorithm.
func setCongestion(c net.Conn, name string) {
	if tc, ok := c.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			_ = congestion.Set(rc, name)
		}
	}
}
