// Package udp runs a rule's UDP side: one session per client address.
//
// The first datagram from a client address admits it (the rule's admission
// gate, then max_sessions), picks a backend by the rule's balance among the
// usable ones, and opens one connected socket to that backend. Datagrams go
// up through that socket unchanged, whatever their size (up to 65,535 bytes;
// nothing is ever truncated) and zero-length ones too; replies go back to the
// client from the listening socket. A session ends after the rule's session
// timeout with no datagram either way.
//
// A backend that answers with ICMP port (or host) unreachable counts as a
// failed dial for its health (Backend.ReportFailure) and the session ends; a
// backend's first reply counts as a successful one (ReportSuccess). The
// client's next datagram opens a new session, which picks again.
//
// Every finished session writes one access line, msg "access", with rule,
// proto ("udp"), client, backend, up and down (bytes), dgrams_up,
// dgrams_down, duration (seconds), end, and, when not zero or empty, dropped
// (datagrams sluice could not pass on) and error. end is one of:
//
//   - idle-timeout: no datagram either way for the session timeout.
//   - drained: ended by a graceful stop (see Service.Drain).
//   - closed, or another reason given to the entry's Stop: ended by an
//     operator through the connection table.
//   - connect-failed: no usable backend, the backend's name did not
//     resolve, the backend was unreachable before it ever replied, or no
//     socket could be opened for it (see below).
//   - reset: the backend became unreachable after replying, or the socket
//     failed.
//   - rejected:<reason>: the client was refused: the admission gate's
//     reasons, or max-sessions.
//
// A refused client (and one for which no backend was usable) is remembered
// for five seconds, or the session timeout if shorter: its datagrams in that
// time are dropped without asking again, and it gets one access line when
// the memory expires, counting them in dropped. So a client that keeps
// sending logs one line per five seconds, not one per datagram. At most
// 10,000 refused clients per rule are remembered; past that, refusals are
// counted in the metrics only.
//
// A session whose socket cannot be opened (the process is out of file
// descriptors, say) is not held against its backend, and it pauses new
// sessions as the TCP accept loop pauses accepting: the rule warns once
// ("new sessions paused: cannot open sockets; backing off"), tries again
// after 5 ms, doubling up to 1 s while the tries fail, and logs "opening
// sessions again" once a socket opens. Meanwhile new clients' datagrams are
// dropped at once, and the clients turned away share one refusal: a single
// connect-failed access line per five seconds (or session timeout, if
// shorter), naming the first of them and counting all their datagrams in
// dropped. Live sessions carry on.
//
// Sessions count in the rule's metrics as connections (opened and closed)
// and as UDP sessions; refusals count as rejections by reason.
//
// A rule may listen through a group of sockets bound to one address with
// SO_REUSEPORT (see Listen and member): on Linux one event loop per socket
// moves the datagrams of the clients the kernel hashes to that socket (see
// loopPlane): recvmmsg and sendmmsg in batches, runs of equal-sized
// datagrams for one destination sent as one segmented message (UDP GSO),
// and no allocation on the path of a datagram. A client's session lives on
// one loop, and its replies leave through the socket its datagrams came in
// on. max_sessions, the admission gate, the refusals remembered and the
// pause count across the loops exactly. An idle session costs its socket
// and its record, no goroutine. Elsewhere a goroutine reads the listening
// socket and one per session its backend's, a datagram per call through the
// net package (see goPlane).
//
// A backend given by host name is resolved when a session starts (through
// the rule's resolver and its TTL); up to 64 datagrams (256 KiB) wait for
// it, and more are dropped.
package udp

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/access"
	"sluice/internal/admit"
	"sluice/internal/backend"
	"sluice/internal/conntrack"
	"sluice/internal/metrics"
)

const (
	// refusalMemory is how long a refused client is remembered.
	refusalMemory = 5 * time.Second
	// maxRefusals caps the refused clients remembered per rule.
	maxRefusals = 10_000
	// drainQuiet is how long a session must be quiet during a graceful stop
	// before it ends (or its session timeout, if shorter).
	drainQuiet = time.Second
	// socketBuffer is the receive and send buffer asked for the listening
	// socket (the kernel caps it at net.core.rmem_max and wmem_max).
	socketBuffer = 4 << 20
	// spareReplyBatches is how many reply batches the pool keeps.
	spareReplyBatches = 16
)

// ReasonMaxSessions is the rejection reason when the rule has MaxSessions
// sessions live.
const ReasonMaxSessions access.Reason = "max-sessions"

// ReasonNoSocket is the rejection reason of a client turned away while new
// sessions are paused for want of sockets (see pause). Its access line says
// connect-failed, as for a session whose socket failed.
const ReasonNoSocket = "no-socket"

// Rule is what the UDP side needs of a rule. It is immutable once given to a
// Service; a reload hands over a new one, which applies to new sessions. The
// server builds it from the rule's validated config, which has filled in
// every default.
type Rule struct {
	Name    string
	Pool    *backend.Pool
	Gate    *admit.Gate   // nil: every client is admitted
	Metrics *metrics.Rule // nil: not counted
	// SessionTimeout ends a session after this long with no datagram either
	// way. It must be positive.
	SessionTimeout time.Duration
	// MaxSessions caps the rule's live sessions; 0 means no cap.
	MaxSessions int
	// ConnectTimeout bounds resolving a backend's host name; zero: no bound.
	ConnectTimeout time.Duration
	// DrainTimeout bounds a graceful stop; zero: live sessions are cut at
	// once.
	DrainTimeout time.Duration
	// Port is the port the service's sockets are bound to when the rule
	// listens on a range of ports (one Service per port), for the access
	// lines and the connection table; 0 on a rule of one port. Index is
	// that port's place in the range, from 0: a backend with a range of
	// ports is sent to its port Index (see backend.Backend.PortFor).
	Port, Index uint16
}

// ruleState is a rule with the counters its sessions add to.
type ruleState struct {
	rule     *Rule
	up, down *atomic.Int64 // the rule's byte counters in the metrics
}

// Deps are the process-wide parts a Service uses.
type Deps struct {
	Logger *slog.Logger
	IDs    *conntrack.IDs   // session ids unique in the process
	Table  *conntrack.Table // the rule's live connections and sessions
	// Sessions counts the rule's live sessions, against max_sessions: the
	// services of a rule's ports share it. Nil: the service's own.
	Sessions *atomic.Int64
	// Ports are the event loops and the sweeper that the services of a
	// rule's ports share when it listens on a range; nil: the service has
	// its own (a loop per socket and a sweeper).
	Ports *Ports

	// AccessLogger takes the access lines; nil: Logger.
	AccessLogger *slog.Logger
}

// Service serves one rule's UDP sockets: one, or a group sharing the
// address (see member). Make it with NewService.
type Service struct {
	deps     Deps
	rule     atomic.Pointer[ruleState]
	epoch    time.Time // origin of the service clock (now)
	ctx      context.Context
	cancel   context.CancelFunc // abandons name resolutions when a drain runs out
	portable bool               // use the portable plane even where the loop is available (tests)

	members     []*member     // one per socket; set by Serve before any session exists
	reading     atomic.Int32  // members whose socket is still read
	readStopped chan struct{} // closed once no socket is read any more
	sweeper     *sweeper      // the service's own, or the one its Ports share
	sweepDone   chan struct{} // closed when the sweeper is done with the service
	wg          sync.WaitGroup

	dropped  atomic.Int64 // datagrams dropped without a session to count them
	stopping atomic.Bool  // no more datagrams are read
	// live counts the sessions in the members' tables that are not
	// refusals (with those of the rule's other ports: Deps.Sessions),
	// refusals the refusals there. live grows only by reserve (admission),
	// so max_sessions holds across members and ports exactly; both shrink
	// at any time.
	live     *atomic.Int64
	refusals atomic.Int64

	mu       sync.Mutex // guards the following fields
	rejected map[string]int64
	serving  bool
	drainEnd int64 // service clock at which a drain cuts every session
	pause    pause // new sessions paused for want of sockets
}

// counters are datagram and byte counts each way.
type counters struct {
	upDgrams, upBytes, downDgrams, downBytes atomic.Int64
}

// NewService returns a service for rule.
func NewService(rule *Rule, deps Deps) *Service {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.AccessLogger == nil {
		deps.AccessLogger = deps.Logger
	}
	if deps.IDs == nil {
		deps.IDs = new(conntrack.IDs)
	}
	if deps.Table == nil {
		deps.Table = conntrack.NewTable()
	}
	if deps.Sessions == nil {
		deps.Sessions = new(atomic.Int64)
	}
	s := &Service{
		deps:        deps,
		epoch:       time.Now(),
		readStopped: make(chan struct{}),
		sweepDone:   make(chan struct{}),
		rejected:    make(map[string]int64),
		live:        deps.Sessions,
	}
	s.sweeper = deps.Ports.sweeperOr(newSweeper())
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.Update(rule)
	return s
}

// Update makes rule apply to sessions created from now on.
func (s *Service) Update(rule *Rule) {
	up, down := rule.Metrics.Bytes()
	s.rule.Store(&ruleState{rule: rule, up: up, down: down})
	s.nudge()
}

// Rule returns the rule in force for new sessions.
func (s *Service) Rule() *Rule { return s.rule.Load().rule }

// now returns the service clock: monotonic nanoseconds since NewService.
func (s *Service) now() int64 { return int64(time.Since(s.epoch)) }

// nudge wakes the sweeper to look again at once.
func (s *Service) nudge() { s.sweeper.nudge() }

// Serve reads datagrams from socks and forwards them, and carries replies
// back, until Drain has ended every session; then it returns nil (or the
// errors of planes that failed). It is Start, waited for.
func (s *Service) Serve(socks ...*Socket) error {
	errs := make(chan error, 1)
	s.Start(func(err error) { errs <- err }, socks...)
	return <-errs
}

// Start serves socks in the background (see Serve) and calls done once
// Drain has ended every session, with nil or the errors of planes that
// failed. socks are one socket, or a group bound to one address with
// SO_REUSEPORT (see Listen): each is served by a plane of its own, on
// Linux an event loop (one of the loops of the service's Ports, when it
// has some). They stay the caller's: keep them open until done is called,
// then close them. Start runs once.
func (s *Service) Start(done func(error), socks ...*Socket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping.Load() || len(socks) == 0 {
		close(s.readStopped)
		close(s.sweepDone)
		defer done(nil) // after the unlock
		return
	}
	for _, sock := range socks {
		sock.sys.setBuffers(socketBuffer)
		m := newMember(s)
		m.plane = newPlane(m, s.portable)
		s.members = append(s.members, m)
	}
	s.reading.Store(int32(len(socks)))
	s.serving = true
	s.sweeper.add(s)
	var (
		mu   sync.Mutex
		left = len(socks)
		all  []error
	)
	finished := func(err error) {
		mu.Lock()
		all = append(all, err)
		left--
		last := left == 0
		mu.Unlock()
		if last {
			done(errors.Join(all...))
		}
	}
	// Under s.mu, so that each plane has its socket before StopReading
	// reaches it.
	for i, m := range s.members {
		m.plane.start(socks[i], finished)
	}
}

// StopReading stops taking datagrams from the socket, from any client, and
// starts the drain clock: live sessions still carry replies back until
// Drain ends them. (A datagram that arrives just as reading stops may still
// be read; it goes to its client's session if there is one, and is dropped
// otherwise.) This is what a closed listener is for TCP; the socket
// stays open for the replies (and may be handed to another process).
func (s *Service) StopReading() {
	s.mu.Lock()
	if s.stopping.Swap(true) {
		s.mu.Unlock()
		return
	}
	s.drainEnd = s.now() + int64(max(0, s.Rule().DrainTimeout))
	members := s.members
	s.mu.Unlock()
	for _, m := range members {
		m.plane.stopReading()
	}
	s.nudge()
}

// Drain ends the live sessions gracefully and returns once all are gone.
// Sessions keep carrying replies; each ends ("drained") once quiet for a
// second (or its session timeout, if shorter), and those still going at the
// rule's drain_timeout after StopReading are cut. Refused clients still
// remembered get their access lines at once. Drain calls StopReading if it
// was not called; Serve returns once Drain is done.
func (s *Service) Drain() {
	s.StopReading()
	s.mu.Lock()
	serving := s.serving
	s.mu.Unlock()
	if !serving {
		return
	}
	<-s.readStopped
	s.nudge()
	s.wg.Wait()
	<-s.sweepDone
	for _, m := range s.members {
		m.plane.quit()
	}
}
