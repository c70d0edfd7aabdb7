package udp

import (
	"math"
	"net/netip"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"sluice/internal/epoll"
	"sluice/internal/rawsock"
)

// eventLoop is the Linux data plane: a goroutine runs an epoll loop
// (level-triggered) over listening sockets (those of one member, or of
// the members of a rule's ports that share it, see Ports) and the backend
// socket of every session of those members, as an nginx worker does with
// its reuseport socket. A turn of the loop reads each ready listening
// socket in batches of up to 32, sends each session's share to its backend
// with one sendmmsg, reads up to 8 replies from each backend socket that
// is ready, and sends the replies to their clients with one sendmmsg per
// listening socket. No goroutine wakes per datagram, and an idle session
// costs its socket and its session record: no goroutine, no buffer. The
// loop runs while it has a member: the first one starts it, and it returns
// once the last has quit.
//
// The loop owns the backend sockets: only it sends on them, reads them and
// closes them. Other goroutines (a session's setup, the sweeper, an
// operator) talk to it through commands, woken by an eventfd.
type eventLoop struct {
	set    *epoll.Set // the loop's sockets, waited on in the Go runtime's poller
	in     *batch     // receives on a listening socket
	out    *batch     // replies on their way out through the listening socket outFD
	outN   int
	outFD  int
	byFD   map[int]*session     // sessions whose socket is in the epoll set
	byTag  map[int32]*loopPlane // members whose socket is in the epoll set
	gso    bool                 // UDP segmentation works (until the kernel says no)
	slots  []int                // 0, 1, ... outBatch-1
	destFn func(slot int) *session
	waitFn func() bool

	mu      sync.Mutex // guards the following fields
	evfd    int
	cmds    []command
	spare   []command // the loop's own: the previous command list, reused
	running bool      // a goroutine runs the loop
	tags    int32     // the last member tag given out
}

// command is a request to the loop from another goroutine.
type command struct {
	kind cmdKind
	ss   *session
	p    *loopPlane
}

// cmdKind says what a command asks.
type cmdKind int

const (
	cmdAdd         cmdKind = iota // read p's listening socket
	cmdAttach                     // ss's socket (ss.fd) is set up: take it
	cmdClose                      // ss has ended: close its socket, finish it
	cmdStopReading                // stop reading p's listening socket
	cmdQuit                       // every session of p has finished: let go of it
)

// tagWake is the tag of the eventfd's events. A session's tag is its
// descriptor; a member's listening socket has a tag below tagWake.
const tagWake = -2

// newEventLoop returns a loop that runs once a member is added.
func newEventLoop() *eventLoop {
	return &eventLoop{evfd: -1, outFD: -1, byFD: make(map[int]*session), byTag: make(map[int32]*loopPlane)}
}

// add gives the loop p's listening socket to read, starting the loop if
// it does not run.
func (l *eventLoop) add(p *loopPlane) {
	l.mu.Lock()
	l.tags--
	p.tag = tagWake + l.tags
	start := !l.running
	l.running = true
	l.mu.Unlock()
	if start {
		go l.run()
	}
	l.post(command{kind: cmdAdd, p: p})
}

// run sets the loop up and runs it until it has no member. Out of
// descriptors at the start is no reason to give up the members: it tries
// again, backing off, until it works or they have quit.
func (l *eventLoop) run() {
	var waited *loopPlane // the member that said the loop waits
	for {
		err := l.setup()
		if err == nil {
			break
		}
		l.mu.Lock()
		l.teardownLocked()
		l.mu.Unlock()
		if waited = l.setupFailed(err); waited == nil {
			return
		}
	}
	if waited != nil {
		waited.m.receiving() // set up after a backoff: it reads its socket, say so
	}
	err := l.loop()
	if err == nil {
		return
	}
	// The epoll set failed: every member's service is done here.
	var members []*loopPlane
	for _, p := range l.byTag {
		members = append(members, p)
	}
	clear(l.byTag)
	l.mu.Lock()
	for _, c := range l.cmds {
		if c.kind == cmdAdd {
			members = append(members, c.p)
		}
	}
	l.cmds = nil
	l.teardownLocked()
	l.running = false
	l.mu.Unlock()
	for _, p := range members {
		p.m.readingStopped()
		p.done(err)
	}
}

// setupFailed handles a failed setup: the members whose services stop let
// go, and the others wait for the next try (see member.receiveFailed). It
// returns the member that said so, or nil when none is left and the loop
// has stopped.
func (l *eventLoop) setupFailed(err error) *loopPlane {
	l.mu.Lock()
	var waiting *loopPlane
	kept := l.cmds[:0]
	var gone []*loopPlane
	for _, c := range l.cmds {
		switch {
		case c.kind == cmdAdd && c.p.svc.stopping.Load():
			gone = append(gone, c.p)
		case c.kind == cmdAdd:
			waiting = c.p
			kept = append(kept, c)
		default:
			kept = append(kept, c) // the next setup runs them (on no member, as nothing)
		}
	}
	l.cmds = kept
	if waiting == nil {
		l.running = false
	}
	l.mu.Unlock()
	for _, p := range gone {
		p.m.readingStopped()
		p.done(nil)
	}
	if waiting != nil {
		waiting.m.receiveFailed(err)
	}
	return waiting
}

// teardownLocked closes the epoll set and the eventfd; l.mu is held.
func (l *eventLoop) teardownLocked() {
	if l.set != nil {
		l.set.Close()
		l.set = nil
	}
	if l.evfd >= 0 {
		unix.Close(l.evfd)
		l.evfd = -1
	}
}

// setup creates the epoll set and the eventfd.
func (l *eventLoop) setup() error {
	set, err := epoll.New("udp-loop", 128)
	if err != nil {
		return err
	}
	l.set = set
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("eventfd", err)
	}
	if err := l.watch(evfd, tagWake, 0); err != nil {
		unix.Close(evfd)
		return err
	}
	l.mu.Lock()
	l.evfd = evfd
	early := len(l.cmds) > 0 // posted before there was an eventfd
	l.mu.Unlock()
	if early {
		l.wake(evfd)
	}
	l.in, l.out = newBatch(listenBatch), newBatch(outBatch)
	l.gso = true
	l.slots = make([]int, outBatch)
	for i := range l.slots {
		l.slots[i] = i
	}
	l.destFn, l.waitFn = l.dest, l.waitWritable
	return nil
}

// watch adds fd to the epoll set with a tag and a generation, which tells a
// session's events from those of an earlier socket with the same number.
func (l *eventLoop) watch(fd int, tag int32, gen uint32) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: tag, Pad: int32(gen)}
	if err := unix.EpollCtl(l.set.FD, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// loop waits for events and handles them until the loop has no member.
func (l *eventLoop) loop() error {
	for {
		events, err := l.set.Wait()
		if err != nil {
			return err
		}
		for _, ev := range events {
			switch tag := ev.Fd; {
			case tag == tagWake:
				l.commands()
			case tag < tagWake:
				if p := l.byTag[tag]; p != nil {
					l.receive(p)
				}
			default:
				l.replies(int(tag), uint32(ev.Pad))
			}
		}
		l.flush()
		if l.stopIfIdle() {
			return nil
		}
	}
}

// stopIfIdle stops the loop when it has no member and no command waits:
// it closes the epoll set, and the next member added starts the loop
// anew. It reports whether the loop stopped.
func (l *eventLoop) stopIfIdle() bool {
	if len(l.byTag) > 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.cmds) > 0 {
		return false
	}
	l.teardownLocked()
	l.running = false
	return true
}

// receive reads a batch from p's listening socket and dispatches it.
func (l *eventLoop) receive(p *loopPlane) {
	b, s := l.in, &l.in.sys
	for i := range s.rh {
		s.rh[i].Hdr.Name = (*byte)(unsafe.Pointer(&s.names[i]))
		s.rh[i].Hdr.Namelen = unix.SizeofSockaddrInet6
	}
	n, errno := recvmmsg(p.lfd, s.rh)
	if errno != 0 {
		if errno != unix.EAGAIN {
			p.m.receiveFailed(errno)
		}
		return
	}
	for i := range n {
		b.lens[i] = int(s.rh[i].Len)
		b.from[i].ap, b.from[i].scope = rawsock.Decode(&s.names[i], s.rh[i].Hdr.Namelen)
	}
	p.m.receiving()
	p.svc.dispatch(p.m, b, n)
}

// replies reads what the backend socket fd has for its client into the
// outgoing batch, after sending the batch's replies if they leave through
// another listening socket.
func (l *eventLoop) replies(fd int, gen uint32) {
	ss := l.byFD[fd]
	if ss == nil || uint32(ss.entry.ID) != gen {
		return // an event of a socket closed in this turn
	}
	lfd := ss.m.plane.(*loopPlane).lfd
	if l.outN == outBatch || l.outN > 0 && l.outFD != lfd {
		l.flush()
	}
	l.outFD = lfd
	hs := l.out.sys.rh[l.outN:min(l.outN+replyBatch, outBatch)]
	for i := range hs {
		hs[i].Hdr.Name, hs[i].Hdr.Namelen = nil, 0
	}
	n, errno := recvmmsg(fd, hs)
	if errno != 0 {
		if errno != unix.EAGAIN {
			ss.fail(errno)
		}
		return
	}
	ss.replyArrived(ss.svc.now())
	for i := range n {
		l.out.lens[l.outN+i] = int(hs[i].Len)
		l.out.dest[l.outN+i] = ss
	}
	l.outN += n
}

// unsent marks a send header whose message has not gone out.
const unsent = math.MaxUint32

// dest returns the session an outgoing reply is for.
func (l *eventLoop) dest(slot int) *session { return l.out.dest[slot] }

// flush sends the waiting replies to their clients with one sendmmsg
// (more when the kernel takes fewer), segmented per client where they
// allow, and counts them per session. A client that cannot be sent to
// does not hold up the others.
func (l *eventLoop) flush() {
	if l.outN == 0 {
		return
	}
	b := l.out
	for i := range l.outN {
		b.ok[i] = false
	}
	b.sys.sendSlots(l.outFD, b, l.slots[:l.outN], &l.gso, l.destFn, l.waitFn)
	for i := 0; i < l.outN; {
		ss, j, sent, bytes := b.dest[i], i, 0, 0
		for ; j < l.outN && b.dest[j] == ss; j++ {
			if b.ok[j] {
				sent++
				bytes += b.lens[j]
			}
			b.dest[j] = nil
		}
		ss.count(false, sent, bytes, j-i)
		i = j
	}
	l.outN = 0
}

// waitWritable waits up to 100 ms for room in the send buffer of the
// listening socket the replies leave through: backpressure from the
// clients' side stalls the loop that long at most, then replies are
// dropped.
func (l *eventLoop) waitWritable() bool {
	fds := []unix.PollFd{{Fd: int32(l.outFD), Events: unix.POLLOUT}}
	n, err := unix.Poll(fds, 100)
	return err == nil && n == 1
}

// post queues a command for the loop and wakes it.
func (l *eventLoop) post(c command) {
	l.mu.Lock()
	l.cmds = append(l.cmds, c)
	first, evfd := len(l.cmds) == 1, l.evfd
	l.mu.Unlock()
	if first && evfd >= 0 {
		l.wake(evfd)
	}
}

// wake makes the eventfd readable.
func (l *eventLoop) wake(evfd int) {
	var one [8]byte
	*(*uint64)(unsafe.Pointer(&one[0])) = 1
	unix.Write(evfd, one[:])
}

// commands runs the queued commands. The eventfd is read before the queue
// is taken, so a command queued meanwhile wakes the loop again.
func (l *eventLoop) commands() {
	var buf [8]byte
	l.mu.Lock()
	evfd := l.evfd
	l.mu.Unlock()
	unix.Read(evfd, buf[:])
	l.mu.Lock()
	cmds := l.cmds
	l.cmds = l.spare[:0]
	l.mu.Unlock()
	for i, c := range cmds {
		switch c.kind {
		case cmdAdd:
			l.addMember(c.p)
		case cmdAttach:
			l.attach(c.ss)
		case cmdClose:
			l.flush() // replies in hand still go out
			delete(l.byFD, c.ss.fd)
			unix.Close(c.ss.fd)
			c.ss.finish()
		case cmdStopReading:
			// Not for a member the loop let go of: its descriptor may be
			// closed, or another socket's already.
			if l.byTag[c.p.tag] == c.p {
				unix.EpollCtl(l.set.FD, unix.EPOLL_CTL_DEL, c.p.lfd, nil)
			}
			c.p.m.readingStopped()
		case cmdQuit:
			if l.byTag[c.p.tag] != c.p {
				break // let go of already (a second Drain)
			}
			l.flush()
			unix.EpollCtl(l.set.FD, unix.EPOLL_CTL_DEL, c.p.lfd, nil)
			delete(l.byTag, c.p.tag)
			c.p.m.readingStopped()
			c.p.done(nil)
		}
		cmds[i] = command{}
	}
	l.spare = cmds
}

// addMember starts reading p's listening socket. A socket the epoll set
// refuses ends p's service there, with the error.
func (l *eventLoop) addMember(p *loopPlane) {
	if err := l.watch(p.lfd, p.tag, 0); err != nil {
		p.m.readingStopped()
		p.done(err)
		return
	}
	l.byTag[p.tag] = p
}

// open sets the session's socket up. It runs in the loop (dispatch). A
// backend given by IP address gets its socket at once, so that a burst
// from a new client is not held up; one given by name is resolved on a
// goroutine of its own, and its socket handed to the loop when ready.
func (l *eventLoop) open(p *loopPlane, ss *session) {
	if addr, ok := ss.backend.Literal(ss.rs.rule.Index); ok {
		if l.own(ss, addr) {
			l.attach(ss)
		}
		return
	}
	go func() {
		addr, err := ss.resolve()
		if err != nil {
			ss.setupFailed(err, true)
			ss.finish()
			return
		}
		if l.own(ss, addr) {
			l.post(command{kind: cmdAttach, ss: ss})
		}
	}()
}

// own opens the session's socket and makes the loop its holder, or, when
// new sessions are paused, that fails or the session has ended meanwhile,
// finishes the session. It reports whether the loop now holds the socket.
func (l *eventLoop) own(ss *session, addr netip.AddrPort) bool {
	if !ss.svc.mayOpen(ss) {
		ss.finish()
		return false
	}
	o, err := ss.origin(addr)
	fd := -1
	if err == nil {
		fd, err = connectRaw(addr, o)
	}
	if err != nil {
		ss.openFailed(err)
		ss.finish()
		return false
	}
	ss.svc.opened()
	ss.mu.Lock()
	if ss.ended {
		ss.mu.Unlock()
		unix.Close(fd)
		ss.finish()
		return false
	}
	ss.owned, ss.fd = true, fd
	ss.mu.Unlock()
	return true
}

// attach takes a session's socket into the loop and sends what the session
// queued meanwhile.
func (l *eventLoop) attach(ss *session) {
	if err := l.adopt(ss); err != nil {
		l.byFD[ss.fd] = ss // so that the close command finds it
		ss.fail(err)
		return
	}
	ss.mu.Lock()
	pending := ss.pending
	ss.pending, ss.pendingBytes = nil, 0
	ss.mu.Unlock()
	for _, q := range pending {
		if err := unix.Sendto(ss.fd, q, unix.MSG_DONTWAIT, nil); err != nil {
			ss.drop(1)
			if unreachable(err) {
				ss.fail(err)
				return
			}
			continue
		}
		ss.count(true, 1, len(q), 1)
	}
}

// adopt adds the session's socket to the loop and makes the session send
// straight to it.
func (l *eventLoop) adopt(ss *session) error {
	if err := l.watch(ss.fd, int32(ss.fd), uint32(ss.entry.ID)); err != nil {
		return err
	}
	l.byFD[ss.fd] = ss
	ss.up = rawConn{fd: ss.fd, gso: &l.gso}
	ss.ready.Store(true)
	return nil
}
