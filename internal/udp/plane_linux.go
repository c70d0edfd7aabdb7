package udp

import (
	"sync"
)

// loopPlane is one member's place in an event loop (see eventLoop): its
// listening socket, read by the loop, and the way its sessions talk to the
// loop. A member of a rule of one port has a loop of its own; the members
// of a rule's ports, when it listens on a range, share the rule's loops
// (see Ports).
type loopPlane struct {
	svc  *Service
	m    *member
	loop *eventLoop
	lfd  int         // the listening socket (the Socket's, kept open until done is called)
	tag  int32       // its tag in the loop's epoll set; set by the loop's add
	done func(error) // called by the loop once the member has quit
}

// newPlane returns m's plane: its place in one of the loops its service's
// Ports share, in a loop of its own, or the portable plane when portable
// is set.
func newPlane(m *member, portable bool) plane {
	if portable {
		return newGoPlane(m)
	}
	loop := m.svc.deps.Ports.loop()
	if loop == nil {
		loop = newEventLoop()
	}
	return &loopPlane{svc: m.svc, m: m, loop: loop, lfd: -1}
}

// start hands the member's socket to its loop, starting the loop if it
// does not run. The socket stays open until done is called (the caller's
// promise), so lfd is never reused under the loop.
func (l *loopPlane) start(sock *Socket, done func(error)) {
	l.lfd, l.done = sock.sys.fd, done
	l.loop.add(l)
}

// open sets the session's socket up (see eventLoop.open).
func (l *loopPlane) open(ss *session) { l.loop.open(l, ss) }

// cut does nothing: the loop never waits long to send.
func (l *loopPlane) cut() {}

// stopReading asks the loop to stop reading the listening socket.
func (l *loopPlane) stopReading() { l.loop.post(command{kind: cmdStopReading, p: l}) }

// release asks the loop to close a session's socket and finish it.
func (l *loopPlane) release(ss *session) { l.loop.post(command{kind: cmdClose, ss: ss}) }

// quit asks the loop to let go of the member: every session has finished.
func (l *loopPlane) quit() { l.loop.post(command{kind: cmdQuit, p: l}) }

// portsSys is the event loops a rule's ports share: workers of them, each
// port's socket given to the next in turn.
type portsSys struct {
	mu    sync.Mutex
	loops []*eventLoop
	next  int
}

// init makes n loops (none runs until a socket is given to it).
func (p *portsSys) init(n int) {
	for range max(n, 1) {
		p.loops = append(p.loops, newEventLoop())
	}
}

// loop returns the loop for the next port, or nil when p is nil: the
// member gets a loop of its own.
func (p *Ports) loop() *eventLoop {
	if p == nil {
		return nil
	}
	p.sys.mu.Lock()
	defer p.sys.mu.Unlock()
	l := p.sys.loops[p.sys.next%len(p.sys.loops)]
	p.sys.next++
	return l
}

// loopDescriptors is what an event loop costs while it runs: its epoll set
// and its eventfd.
const loopDescriptors = 2
