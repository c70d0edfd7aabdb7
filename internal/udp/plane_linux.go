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

// loopPlane is the Linux data plane: one goroutine per member (listening
// socket) of a rule runs an epoll loop (level-triggered) over that socket
// and the backend socket of every session of the member, as an nginx
// worker does with its reuseport socket. A turn of the loop reads the
// listening socket in batches of up to 32, sends each session's share to
// its backend with one sendmmsg, reads up to 8 replies from each backend
// socket that is ready, and sends all the replies to their clients with one
// sendmmsg. No goroutine wakes per datagram, and an idle session costs its
// socket and its session record: no goroutine, no buffer.
//
// The loop owns the backend sockets: only it sends on them, reads them and
// closes them. Other goroutines (a session's setup, the sweeper, an
// operator) talk to it through commands, woken by an eventfd.
type loopPlane struct {
	svc    *Service
	m      *member
	lfd    int        // the listening socket (the Socket's, kept open until serve returns)
	set    *epoll.Set // the loop's sockets, waited on in the Go runtime's poller
	evfd   int
	in     *batch // receives on the listening socket
	out    *batch // replies on their way out through the listening socket
	outN   int
	byFD   map[int]*session // sessions whose socket is in the epoll set
	gso    bool             // UDP segmentation works (until the kernel says no)
	slots  []int            // 0, 1, ... outBatch-1
	destFn func(slot int) *session
	waitFn func() bool

	mu    sync.Mutex // guards cmds
	cmds  []command
	spare []command // the loop's own: the previous command list, reused
}

// command is a request to the loop from another goroutine.
type command struct {
	kind cmdKind
	ss   *session
}

// cmdKind says what a command asks.
type cmdKind int

const (
	cmdAttach      cmdKind = iota // ss's socket (ss.fd) is set up: take it
	cmdClose                      // ss has ended: close its socket, finish it
	cmdStopReading                // stop reading the listening socket
	cmdQuit                       // every session has finished: return
)

// Tags of the epoll events that are not a session's (whose tag is its
// descriptor).
const (
	tagListener = -1
	tagWake     = -2
)

// newPlane returns m's loop, or the portable plane when portable is set.
func newPlane(m *member, portable bool) plane {
	if portable {
		return newGoPlane(m)
	}
	return &loopPlane{svc: m.svc, m: m, lfd: -1, evfd: -1, byFD: make(map[int]*session)}
}

// serve runs the loop until quit. The socket stays open until serve
// returns (the caller's promise), so lfd is never reused under the loop.
func (l *loopPlane) serve(sock *Socket) error {
	l.lfd = sock.sys.fd
	defer l.m.readingStopped()
	// Out of descriptors at the start is no reason to give up the rule:
	// try again, backing off, until it works or the service stops.
	for {
		err := l.setup()
		if err == nil {
			break
		}
		l.teardown()
		if l.svc.stopping.Load() {
			return nil
		}
		l.m.receiveFailed(err)
	}
	l.m.receiving() // set up again after a backoff: it reads its socket, say so
	defer l.teardown()
	return l.loop()
}

// teardown closes the epoll set and the eventfd.
func (l *loopPlane) teardown() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.set != nil {
		l.set.Close()
		l.set = nil
	}
	if l.evfd >= 0 {
		unix.Close(l.evfd)
		l.evfd = -1
	}
}

// setup creates the epoll set and the eventfd and adds the listening socket.
func (l *loopPlane) setup() error {
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
	if err := l.watch(l.lfd, tagListener, 0); err != nil {
		return err
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
func (l *loopPlane) watch(fd, tag int, gen uint32) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(tag), Pad: int32(gen)}
	if err := unix.EpollCtl(l.set.FD, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// loop waits for events and handles them until a quit command.
func (l *loopPlane) loop() error {
	for {
		events, err := l.set.Wait()
		if err != nil {
			return err
		}
		now := l.svc.now()
		quit := false
		for _, ev := range events {
			switch tag := int(ev.Fd); tag {
			case tagListener:
				l.receive()
			case tagWake:
				quit = l.commands() || quit
			default:
				l.replies(tag, uint32(ev.Pad), now)
			}
		}
		l.flush()
		if quit {
			return nil
		}
	}
}

// receive reads a batch from the listening socket and dispatches it.
func (l *loopPlane) receive() {
	b, s := l.in, &l.in.sys
	for i := range s.rh {
		s.rh[i].Hdr.Name = (*byte)(unsafe.Pointer(&s.names[i]))
		s.rh[i].Hdr.Namelen = unix.SizeofSockaddrInet6
	}
	n, errno := recvmmsg(l.lfd, s.rh)
	if errno != 0 {
		if errno != unix.EAGAIN {
			l.m.receiveFailed(errno)
		}
		return
	}
	for i := range n {
		b.lens[i] = int(s.rh[i].Len)
		b.from[i].ap, b.from[i].scope = rawsock.Decode(&s.names[i], s.rh[i].Hdr.Namelen)
	}
	l.m.receiving()
	l.svc.dispatch(l.m, b, n)
}

// replies reads what the backend socket fd has for its client into the
// outgoing batch.
func (l *loopPlane) replies(fd int, gen uint32, now int64) {
	ss := l.byFD[fd]
	if ss == nil || uint32(ss.entry.ID) != gen {
		return // an event of a socket closed in this turn
	}
	if l.outN == outBatch {
		l.flush()
	}
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
	ss.replyArrived(now)
	for i := range n {
		l.out.lens[l.outN+i] = int(hs[i].Len)
		l.out.dest[l.outN+i] = ss
	}
	l.outN += n
}

// unsent marks a send header whose message has not gone out.
const unsent = math.MaxUint32

// dest returns the session an outgoing reply is for.
func (l *loopPlane) dest(slot int) *session { return l.out.dest[slot] }

// flush sends the waiting replies to their clients with one sendmmsg
// (more when the kernel takes fewer), segmented per client where they
// allow, and counts them per session. A client that cannot be sent to
// does not hold up the others.
func (l *loopPlane) flush() {
	if l.outN == 0 {
		return
	}
	b := l.out
	for i := range l.outN {
		b.ok[i] = false
	}
	b.sys.sendSlots(l.lfd, b, l.slots[:l.outN], &l.gso, l.destFn, l.waitFn)
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

// waitWritable waits up to 100 ms for room in the listening socket's send
// buffer: backpressure from the clients' side stalls the loop that long at
// most, then replies are dropped.
func (l *loopPlane) waitWritable() bool {
	fds := []unix.PollFd{{Fd: int32(l.lfd), Events: unix.POLLOUT}}
	n, err := unix.Poll(fds, 100)
	return err == nil && n == 1
}

// post queues a command for the loop and wakes it.
func (l *loopPlane) post(c command) {
	l.mu.Lock()
	l.cmds = append(l.cmds, c)
	first, evfd := len(l.cmds) == 1, l.evfd
	l.mu.Unlock()
	if first && evfd >= 0 {
		l.wake(evfd)
	}
}

// wake makes the eventfd readable.
func (l *loopPlane) wake(evfd int) {
	var one [8]byte
	*(*uint64)(unsafe.Pointer(&one[0])) = 1
	unix.Write(evfd, one[:])
}

// commands runs the queued commands and reports whether one was quit. The
// eventfd is read before the queue is taken, so a command queued meanwhile
// wakes the loop again.
func (l *loopPlane) commands() (quit bool) {
	var buf [8]byte
	unix.Read(l.evfd, buf[:])
	l.mu.Lock()
	cmds := l.cmds
	l.cmds = l.spare[:0]
	l.mu.Unlock()
	for i, c := range cmds {
		switch c.kind {
		case cmdAttach:
			l.attach(c.ss)
		case cmdClose:
			l.flush() // replies in hand still go out
			delete(l.byFD, c.ss.fd)
			unix.Close(c.ss.fd)
			c.ss.finish()
		case cmdStopReading:
			unix.EpollCtl(l.set.FD, unix.EPOLL_CTL_DEL, l.lfd, nil)
			l.m.readingStopped()
		case cmdQuit:
			quit = true
		}
		cmds[i] = command{}
	}
	l.spare = cmds
	return quit
}

// open sets the session's socket up. It runs in the loop (dispatch). A
// backend given by IP address gets its socket at once, so that a burst
// from a new client is not held up; one given by name is resolved on a
// goroutine of its own, and its socket handed to the loop when ready.
func (l *loopPlane) open(ss *session) {
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
func (l *loopPlane) own(ss *session, addr netip.AddrPort) bool {
	asked, ok := l.svc.mayOpen(ss)
	if !ok {
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
	l.svc.opened(asked)
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
func (l *loopPlane) attach(ss *session) {
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
func (l *loopPlane) adopt(ss *session) error {
	if err := l.watch(ss.fd, ss.fd, uint32(ss.entry.ID)); err != nil {
		return err
	}
	l.byFD[ss.fd] = ss
	ss.up = rawConn{fd: ss.fd, gso: &l.gso}
	ss.ready.Store(true)
	return nil
}

// cut does nothing: the loop never waits long to send.
func (l *loopPlane) cut() {}

// stopReading asks the loop to stop reading the listening socket.
func (l *loopPlane) stopReading() { l.post(command{kind: cmdStopReading}) }

// release asks the loop to close a session's socket and finish it.
func (l *loopPlane) release(ss *session) { l.post(command{kind: cmdClose, ss: ss}) }

// quit asks the loop to return.
func (l *loopPlane) quit() { l.post(command{kind: cmdQuit}) }
