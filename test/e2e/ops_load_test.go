package e2e

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// This file holds the traffic the operations tests keep up while they
// reload and upgrade sluice: short connections in a loop (churners) and
// long-lived two-way streams checked byte for byte.

// addrBook says where each rule listens right now, for the churners that
// follow a rule around. A reload that moves, adds or removes rules is
// bracketed by begin and commit; the generation is odd while one is under
// way.
type addrBook struct {
	mu      sync.Mutex        // guards the following fields
	gen     uint64            // even: settled; odd: a reload is under way
	addrs   map[string]string // rule name -> listen address; absent: not listening
	changed chan struct{}     // closed when gen moves on
}

// newAddrBook returns a settled book with the given addresses.
func newAddrBook(addrs map[string]string) *addrBook {
	return &addrBook{addrs: addrs, changed: make(chan struct{})}
}

// lookup returns where rule listens ("" when it does not), the generation,
// and a channel that is closed when the generation moves on.
func (b *addrBook) lookup(rule string) (string, uint64, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addrs[rule], b.gen, b.changed
}

// settled reports whether gen was a settled generation and still is the
// current one: no reload began since.
func (b *addrBook) settled(gen uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return gen%2 == 0 && gen == b.gen
}

// begin marks a reload as under way.
func (b *addrBook) begin() { b.advance(nil) }

// commit records the addresses in force once a reload is done.
func (b *addrBook) commit(addrs map[string]string) { b.advance(addrs) }

// advance moves to the next generation, with new addresses if not nil.
func (b *addrBook) advance(addrs map[string]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	if addrs != nil {
		b.addrs = addrs
	}
	close(b.changed)
	b.changed = make(chan struct{})
}

// churnPace is how often one churner starts a connection at most. It keeps
// the race-built sluice and the test from taking both cores.
const churnPace = 4 * time.Millisecond

// churner is one client goroutine that connects to a rule, does one echo
// round trip and closes, over and over.
type churner struct {
	rule    string
	book    *addrBook
	fixed   bool         // the rule's address never moves: every failure counts
	ok      atomic.Int64 // round trips that worked
	failed  atomic.Int64 // failures that count
	excused atomic.Int64 // failures while the rule's address was moving

	mu   sync.Mutex // guards errs
	errs []string   // the first few failures
}

// run loops until stop is closed.
func (c *churner) run(id int, stop <-chan struct{}) {
	tick := time.NewTicker(churnPace)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		addr, gen, changed := c.book.lookup(c.rule)
		if addr == "" { // the rule is not there now: wait for a reload
			select {
			case <-stop:
				return
			case <-changed:
				continue
			}
		}
		err := echoOnce(addr, fmt.Sprintf("churner %d, round %d\n", id, i))
		switch {
		case err == nil:
			c.ok.Add(1)
		case c.fixed || c.book.settled(gen):
			c.failed.Add(1)
			c.note(fmt.Sprintf("rule %s at %s: %v", c.rule, addr, err))
		default:
			c.excused.Add(1)
		}
	}
}

// note keeps the first few distinct failures for the report.
func (c *churner) note(msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) < 3 && !slices.Contains(c.errs, msg) {
		c.errs = append(c.errs, msg)
	}
}

// echoOnce connects to addr ("unix:PATH" or a TCP address), does one round trip through an echo backend
// and closes.
func echoOnce(addr, msg string) error {
	c, err := dialAny(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return roundTrip(c, msg)
}

// dialAny connects to addr within waitLimit: "unix:PATH" is a unix
// socket, anything else a TCP address.
func dialAny(addr string) (net.Conn, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return net.DialTimeout("unix", path, waitLimit)
	}
	return net.DialTimeout("tcp", addr, waitLimit)
}

// duplexConn is a stream's connection, TCP or unix: both half-close.
type duplexConn interface {
	net.Conn
	CloseWrite() error
}

// dialDuplex connects to sluice at addr ("unix:PATH" or a TCP address);
// the test's cleanup closes the connection.
func dialDuplex(t *testing.T, addr string) duplexConn {
	t.Helper()
	c, err := dialAny(addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(duplexConn)
}

// load is the traffic of one test: churners and streams.
type load struct {
	t        *testing.T
	stop     chan struct{}
	wg       sync.WaitGroup
	churners []*churner
	mu       sync.Mutex // guards streams
	streams  []*stream
}

// startLoad starts one churner per entry of rules (a rule may appear more
// than once); the rules in fixed never move. Cleanup stops everything.
func startLoad(t *testing.T, book *addrBook, rules []string, fixed map[string]bool) *load {
	l := &load{t: t, stop: make(chan struct{})}
	for i, r := range rules {
		c := &churner{rule: r, book: book, fixed: fixed[r]}
		l.churners = append(l.churners, c)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c.run(i, l.stop)
		}()
	}
	t.Cleanup(l.halt)
	return l
}

// halt stops the churners and the streams' writers and waits for the
// churners. It is safe to call more than once.
func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// addStream opens a stream to addr and keeps it running with the load.
func (l *load) addStream(name, addr string) *stream {
	l.t.Helper()
	s := startStream(l.t, name, addr, l.stop)
	l.mu.Lock()
	l.streams = append(l.streams, s)
	l.mu.Unlock()
	return s
}

// progress is a snapshot of how far the traffic has come.
type progress struct {
	ok   []int64 // per churner
	recv []int64 // per stream
}

// snapshot returns the current progress.
func (l *load) snapshot() progress {
	var p progress
	for _, c := range l.churners {
		p.ok = append(p.ok, c.ok.Load())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.streams {
		p.recv = append(p.recv, s.recv.Load())
	}
	return p
}

// waitProgress waits until every churner whose rule listens now has done
// at least rounds more round trips, and every stream has received at least
// n more bytes, than in from. A broken stream fails the test at once.
func (l *load) waitProgress(from progress, rounds, n int64) {
	l.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		now, lagging := l.snapshot(), ""
		for i, c := range l.churners {
			if addr, _, _ := c.book.lookup(c.rule); addr != "" && now.ok[i] < from.ok[i]+rounds {
				lagging = fmt.Sprintf("churner %d (rule %s) at %d round trips, want %d",
					i, c.rule, now.ok[i], from.ok[i]+rounds)
			}
		}
		l.mu.Lock()
		streams := l.streams
		l.mu.Unlock()
		for i, s := range streams {
			if err := s.failure(); err != nil {
				l.t.Fatalf("stream %s broke: %v", s.name, err)
			}
			if i < len(from.recv) && now.recv[i] < from.recv[i]+n {
				lagging = fmt.Sprintf("stream %s at %d bytes, want %d", s.name, now.recv[i], from.recv[i]+n)
			}
		}
		if lagging == "" {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("traffic stalled for %v: %s", waitLimit, lagging)
		}
		time.Sleep(5 * time.Millisecond) // poll; the counters have no signal
	}
}

// checkChurn reports every counted failure and logs the totals.
func (l *load) checkChurn() {
	l.t.Helper()
	var ok, failed, excused int64
	for i, c := range l.churners {
		ok, failed, excused = ok+c.ok.Load(), failed+c.failed.Load(), excused+c.excused.Load()
		if c.ok.Load() == 0 {
			l.t.Errorf("churner %d (rule %s) never got through", i, c.rule)
		}
		if n := c.failed.Load(); n > 0 {
			c.mu.Lock()
			l.t.Errorf("churner %d (rule %s): %d failed connections, first: %s",
				i, c.rule, n, strings.Join(c.errs, "; "))
			c.mu.Unlock()
		}
	}
	l.t.Logf("churn: %d round trips, %d failed, %d refused while the address moved", ok, failed, excused)
}

// streamChunk and streamPace set a stream's rate: one chunk per pace each
// way, about 3 MB/s, enough to be mid-transfer at every reload.
const (
	streamChunk = 16 << 10
	streamPace  = 5 * time.Millisecond
)

// stream is a long-lived connection through an echo backend. Its writer
// sends a seeded pseudo-random byte stream at a steady pace; its reader
// checks every byte that comes back against the same sequence. Both sides
// hash what they handle with SHA-256.
type stream struct {
	name       string
	c          duplexConn
	sent, recv atomic.Int64
	wrote      chan error // the writer's result
	read       chan error // the reader's result
	sentSum    []byte     // SHA-256 of what was sent; set before wrote is sent to
	recvSum    []byte     // SHA-256 of what came back; set before read is sent to
	halt       chan struct{}
	haltOnce   sync.Once

	mu  sync.Mutex // guards err
	err error      // the first failure of either side
}

// startStream connects to addr ("unix:PATH" or a TCP address) and starts the writer and the reader. The
// writer half-closes when stop is closed or the stream's stop method is
// called; the reader then runs to EOF.
func startStream(t *testing.T, name, addr string, stop <-chan struct{}) *stream {
	t.Helper()
	s := &stream{
		name: name, c: dialDuplex(t, addr), wrote: make(chan error, 1), read: make(chan error, 1),
		halt: make(chan struct{}),
	}
	seed := sha256.Sum256([]byte(name + "|" + s.c.LocalAddr().String()))
	go func() { s.wrote <- s.fail(s.write(rand.NewChaCha8(seed), stop)) }()
	go func() { s.read <- s.fail(s.check(rand.NewChaCha8(seed))) }()
	return s
}

// fail records err as the stream's first failure and returns it.
func (s *stream) fail(err error) error {
	if err != nil {
		s.mu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.mu.Unlock()
	}
	return err
}

// failure returns the stream's first failure so far.
func (s *stream) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// stop makes the writer half-close; finish then waits for the end.
func (s *stream) stop() { s.haltOnce.Do(func() { close(s.halt) }) }

// write sends chunks from src, one per streamPace, until stop or s.halt is
// closed, then half-closes.
func (s *stream) write(src io.Reader, stop <-chan struct{}) error {
	h := sha256.New()
	defer func() { s.sentSum = h.Sum(nil) }()
	tick := time.NewTicker(streamPace)
	defer tick.Stop()
	buf := make([]byte, streamChunk)
	for {
		select {
		case <-stop:
			return s.c.CloseWrite()
		case <-s.halt:
			return s.c.CloseWrite()
		case <-tick.C:
		}
		_, _ = src.Read(buf) // ChaCha8 never fails
		h.Write(buf)
		if err := s.c.SetWriteDeadline(time.Now().Add(waitLimit)); err != nil {
			return err
		}
		n, err := s.c.Write(buf)
		s.sent.Add(int64(n))
		if err != nil {
			return fmt.Errorf("write at byte %d: %w", s.sent.Load(), err)
		}
	}
}

// check reads until EOF and compares every byte with the sequence from
// want, failing at the first difference.
func (s *stream) check(want io.Reader) error {
	h := sha256.New()
	defer func() { s.recvSum = h.Sum(nil) }()
	buf, exp := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		if err := s.c.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
			return err
		}
		n, err := s.c.Read(buf)
		if n > 0 {
			_, _ = want.Read(exp[:n])
			if i := firstDiff(buf[:n], exp[:n]); i >= 0 {
				return fmt.Errorf("byte %d came back as %#x, sent %#x", s.recv.Load()+int64(i), buf[i], exp[i])
			}
			h.Write(buf[:n])
			s.recv.Add(int64(n))
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read at byte %d: %w", s.recv.Load(), err)
		}
	}
}

// firstDiff returns the index of the first byte where a and b differ, or -1.
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// access waits for the stream's access line in p's log. The stream's name
// is its rule's. A client address alone does not identify the stream:
// the kernel may give the same local port to a churner's connection to
// another address, or to this one after the stream's port was free. So
// the line must also be of the stream's rule and either carry more bytes
// than a churner sends or end otherwise than a churner's clean end.
func (s *stream) access(p *proc) record {
	p.t.Helper()
	client := s.c.LocalAddr().String()
	rec, _ := p.waitFrom(0, "access line of stream "+s.name+" from "+client, func(r record) bool {
		return r.str("msg") == "access" && r.str("rule") == s.name && r.str("client") == client &&
			(r.num("up") > 1024 || r.num("down") > 1024 || r.str("end") != "eof")
	})
	return rec
}

// finish waits for the stream to end (the load halted or the stream stopped) and
// checks that every byte sent came back, byte-exact. It returns the bytes
// moved each way.
func (s *stream) finish(t *testing.T) int64 {
	t.Helper()
	for _, ch := range []chan error{s.wrote, s.read} {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("stream %s: %v", s.name, err)
				return -1
			}
		case <-time.After(waitLimit):
			t.Errorf("stream %s did not end within %v", s.name, waitLimit)
			return -1
		}
	}
	sent, recv := s.sent.Load(), s.recv.Load()
	if sent != recv || !bytes.Equal(s.sentSum, s.recvSum) {
		t.Errorf("stream %s: sent %d bytes (sha256 %x), received %d (sha256 %x)", s.name, sent, s.sentSum, recv, s.recvSum)
	}
	return sent
}
