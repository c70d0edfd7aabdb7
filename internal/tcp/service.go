package tcp

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/access"
	"sluice/internal/admit"
	"sluice/internal/backend"
	"sluice/internal/congestion"
	"sluice/internal/conntrack"
	"sluice/internal/metrics"
	"sluice/internal/relay"
	"sluice/internal/route"
	"sluice/internal/tlsconf"
	"sluice/internal/workers"
)

// Rule is what the TCP side needs of a rule. It is immutable once given to a
// Service; a reload hands over a new one, which applies to new connections.
type Rule struct {
	Name         string
	Pool         *backend.Pool  // its connect timeout also bounds writing the PROXY header out
	Gate         *admit.Gate    // nil: every client is admitted
	Metrics      *metrics.Rule  // nil: not counted
	IdleTimeout  time.Duration  // zero: none
	DrainTimeout time.Duration  // graceful-stop limit and half-close idle limit
	Bandwidth    int64          // bytes per second per direction; zero: unlimited
	SendProxy    int            // PROXY protocol version sent to backends; 0: none
	TrustProxy   []netip.Prefix // clients whose PROXY header is read and believed
	// ProxyHeaderTimeout bounds the wait for a trusted sender's PROXY
	// header. Zero: DefaultProxyHeaderTimeout.
	ProxyHeaderTimeout time.Duration
	// MaxPendingHeaders bounds the connections from one trusted sender's
	// address that may wait for their PROXY header at once. Zero:
	// DefaultMaxPendingHeaders.
	MaxPendingHeaders int
	Congestion        congestion.Choice
	// Workers is how many of the engine's loops accept from each of the
	// rule's listeners (at most all of them; zero: one). It applies to a
	// listener when the service takes it.
	Workers int

	// Routes choose a client's backends by its first bytes (see peek.go):
	// Table judges the bytes, its route i being Routes[i]. Pool and
	// SendProxy above are then the default route, for the clients no
	// route takes; a nil Pool means none (they are refused). A nil Table:
	// the rule has no routes, and every client goes to Pool at once.
	Routes []Route
	Table  *route.Table
	// PeekTimeout bounds the wait for a routed rule's client to choose
	// its route, from accept. Zero: DefaultPeekTimeout.
	PeekTimeout time.Duration
	// TLS terminates TLS for the clients of a rule without routes, or of
	// its default route (see terminate.go); nil: their bytes pass
	// through. A route's own is Route.TLS.
	TLS *tlsconf.Holder
	// FirstPort and LastPort are the rule's listen range; both 0 for a
	// rule of one port. A client of port p of the range is sent to port
	// p-FirstPort of a backend's range (backend.Attempts.AtPort), and
	// its access line and table entry say p.
	FirstPort, LastPort uint16
}

// portIndex returns the place of port in the rule's listen range, from 0;
// 0 for a rule of one port, or a port no longer in the range (a listener
// a reload is closing).
func (r *Rule) portIndex(port uint16) uint16 {
	if port < r.FirstPort || port > r.LastPort {
		return 0
	}
	return port - r.FirstPort
}

// listenPort returns port, the port a client came in on, as its access line
// and table entry say it: on a rule of a range of ports; 0 otherwise.
func (r *Rule) listenPort(port uint16) uint16 {
	if r.FirstPort == 0 {
		return 0
	}
	return port
}

// Deps are the process-wide parts a Service uses.
type Deps struct {
	Logger  *slog.Logger
	Pools   *relay.Pools     // shared pipes and buffers
	Parker  *relay.Parker    // takes idle relays off their goroutines; may be nil
	Engine  *relay.Engine    // carries relays on event loops; may be nil
	Workers *workers.Pool    // goroutines with grown stacks for dials and relays; may be nil
	IDs     *conntrack.IDs   // connection ids unique in the process
	Table   *conntrack.Table // the rule's live connections

	// AccessLogger takes the access lines; nil: Logger.
	AccessLogger *slog.Logger
}

// Service serves one rule's TCP listener(s).
type Service struct {
	rule     atomic.Pointer[Rule]
	deps     Deps
	ctx      context.Context // cancelled when the service is cut, to abandon dials
	cancel   context.CancelFunc
	wg       sync.WaitGroup   // one per connection until its access line is written
	cutting  atomic.Bool      // live connections are being cut; late ones stop at once
	spawn    func(func())     // runs a connection's goroutine (Deps.Workers or go)
	setups   chan struct{}    // a slot per connection dialing; see maxSetups
	pending  pendingHeaders   // trusted senders' connections waiting for a header
	peekBufs peekBuffers      // routed connections' first read buffers
	accepted func(relay.Loop) // tests only: told of each connection a loop accepts
	relaying func(*conn)      // tests only: told of each connection whose relay starts
	listener sync.Mutex       // guards the following fields
	lns      []*listening
}

// NewService returns a service for rule.
func NewService(rule *Rule, deps Deps) *Service {
	if deps.AccessLogger == nil {
		deps.AccessLogger = deps.Logger
	}
	s := &Service{deps: deps, spawn: func(f func()) { go f() }, setups: make(chan struct{}, maxSetups)}
	if deps.Workers != nil {
		s.spawn = deps.Workers.Go
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.rule.Store(rule)
	return s
}

// Update makes rule apply to connections accepted from now on.
func (s *Service) Update(rule *Rule) {
	s.rule.Store(rule)
	s.listener.Lock()
	defer s.listener.Unlock()
	for _, l := range s.lns {
		fitListener(l, rule)
	}
}

// Take makes ln one of the service's listeners at once, so that
// CloseListeners closes it from now on, and starts accepting on it. ended
// is called once, when the service stops accepting on ln: with nil when
// CloseListeners closed it, and with the error when ln failed. Where the
// engine's loops accept (see direct_linux.go) no goroutine waits for ln:
// ended(nil) is then called by CloseListeners itself, and it must not
// block. Elsewhere a goroutine per listener accepts, and calls ended as
// it returns.
func (s *Service) Take(ln net.Listener, ended func(error)) {
	l := &listening{ln: ln, port: addrPort(ln.Addr()).Port()}
	s.listener.Lock()
	defer s.listener.Unlock()
	rule := s.rule.Load()
	startListening(l, rule)
	s.openDirect(l, rule.Workers, ended)
	s.lns = append(s.lns, l)
	if l.direct != nil {
		return
	}
	// Started under the lock: a CloseListeners waiting for it closes ln
	// after the goroutine exists, and its Accept then returns at once.
	go func() { ended(acceptLoop(ln, func(c net.Conn) { s.start(c, l) }, s.deps.Logger)) }()
}

// CloseListeners stops accepting new connections.
func (s *Service) CloseListeners() {
	s.listener.Lock()
	defer s.listener.Unlock()
	for _, l := range s.lns {
		l.close()
	}
	s.lns = nil
}

// CloseListener stops accepting on ln alone (a port a reload takes out of
// the rule's range), as CloseListeners does (ended is told nil); the
// connections it accepted carry on. A listener that is not the service's
// is left alone.
func (s *Service) CloseListener(ln net.Listener) {
	s.listener.Lock()
	defer s.listener.Unlock()
	for i, l := range s.lns {
		if l.ln == ln {
			l.close()
			s.lns = append(s.lns[:i], s.lns[i+1:]...)
			return
		}
	}
}

// Drain waits for live connections to finish for up to timeout, then cuts
// the rest (logged as "drained") and returns once every one is gone. Call it
// after CloseListeners, once Serve has returned: a connection accepted after
// Drain began would not be waited for.
func (s *Service) Drain(timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-done:
		return
	case <-timer.C:
	}
	s.cutting.Store(true)
	s.cancel()
	s.deps.Table.StopAll(access.Drained)
	<-done
}

// logAccess writes the one access line of a finished connection.
func (s *Service) logAccess(cn *conn, res relay.Result) {
	line := access.Line{
		Rule: cn.rule.Name, Proto: "tcp", Client: cn.client, Listen: cn.rule.listenPort(cn.port), Backend: cn.entry.Backend,
		Up: res.Up, Down: res.Down, Start: cn.start, End: res.End, Err: res.Err,
	}
	if rt := cn.rt; rt != nil {
		line.Route, line.SNI, line.ALPN = rt.name, rt.seen.ServerName, rt.seen.ALPN
		line.TLSVersion, line.TLSCipher = rt.tlsVersion, rt.tlsCipher
	}
	line.Log(s.deps.AccessLogger)
}
