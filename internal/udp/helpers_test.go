package udp

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/backend"
	"sluice/internal/conntrack"
	"sluice/internal/testkit/logrec"
)

// waitLimit bounds every wait for something that should happen soon; the
// tests never assert that anything is fast, only that it happens.
const waitLimit = 10 * time.Second

// record is one captured log record.
type record = logrec.Record

// logRecorder keeps what the service logs; tests wait on logged events,
// not on time.
type logRecorder struct{ *logrec.Recorder }

func newLogRecorder() *logRecorder { return &logRecorder{logrec.New()} }

// find returns the records that match.
func (h *logRecorder) find(match func(record) bool) []record { return h.Find(match) }

// waitN waits until n records match and returns them.
func (h *logRecorder) waitN(t *testing.T, n int, what string, match func(record) bool) []record {
	t.Helper()
	return h.WaitN(t, n, waitLimit, what, match)
}

// accessOf matches the access line of client (and end, unless empty).
func accessOf(client net.Addr, end string) func(record) bool {
	name := clientName(client)
	return func(r record) bool {
		return r.Msg == "access" && r.Attrs["client"] == name && (end == "" || r.Attrs["end"] == end)
	}
}

// clientName is how the service logs a client socket's address.
func clientName(a net.Addr) string {
	ap := a.(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

// udpBackend is a real UDP server on loopback that answers each datagram
// with reply(datagram) unless reply returns nil. It records the distinct
// source addresses it has seen.
type udpBackend struct {
	conn  *net.UDPConn
	reply func([]byte) []byte
	done  chan struct{}
	first chan netip.AddrPort // receives the first datagram's source

	mu      sync.Mutex // guards the following fields
	sources map[netip.AddrPort]int
}

// startBackend serves on a free port of host (an IP literal) until the
// test ends.
func startBackend(t *testing.T, host string, reply func([]byte) []byte) *udpBackend {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(host), 0)))
	if err != nil {
		t.Fatalf("backend listen on %s: %v", host, err)
	}
	// Room for a 64 KiB datagram from each of several sessions at once.
	if err := c.SetReadBuffer(4 << 20); err != nil {
		t.Fatal(err)
	}
	b := &udpBackend{conn: c, reply: reply, done: make(chan struct{}), first: make(chan netip.AddrPort, 1), sources: map[netip.AddrPort]int{}}
	go b.serve()
	t.Cleanup(func() {
		c.Close()
		<-b.done
	})
	return b
}

// echo answers every datagram with itself.
func echo(p []byte) []byte { return p }

// tagged answers every datagram with tag, a colon and the datagram.
func tagged(tag string) func([]byte) []byte {
	return func(p []byte) []byte { return append([]byte(tag+":"), p...) }
}

func (b *udpBackend) serve() {
	defer close(b.done)
	buf := make([]byte, slotSize)
	for {
		n, from, err := b.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		b.mu.Lock()
		if len(b.sources) == 0 {
			b.first <- from
		}
		b.sources[from]++
		b.mu.Unlock()
		if out := b.reply(buf[:n]); out != nil {
			if _, err := b.conn.WriteToUDPAddrPort(out, from); err != nil && errors.Is(err, net.ErrClosed) {
				return
			}
		}
	}
}

// addr returns the backend's address in config form.
func (b *udpBackend) addr() backend.Address { return configAddr(b.conn.LocalAddr()) }

// sourceCount returns how many distinct source addresses sent datagrams.
func (b *udpBackend) sourceCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sources)
}

// configAddr converts a socket address to a config address.
func configAddr(a net.Addr) backend.Address {
	ap := a.(*net.UDPAddr).AddrPort()
	return backend.Address{Network: "tcp", Host: ap.Addr().Unmap().String(), Port: ap.Port()}
}

// deadAddr returns a loopback UDP address nobody listens on, so datagrams
// sent there are answered with ICMP port unreachable.
func deadAddr(t *testing.T) backend.Address {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	a := configAddr(c.LocalAddr())
	c.Close()
	return a
}

// fixture is a running service on loopback with its collaborators.
type fixture struct {
	svc     *Service
	addr    *net.UDPAddr // where clients send
	logs    *logRecorder
	table   *conntrack.Table
	pool    *backend.Pool
	served  chan error
	socks   []*Socket    // the group f.addr is the address of
	resends atomic.Int64 // datagrams exchange sent again
}

// testWorkers is the number of sockets and planes a fixture serves its rule
// with unless the test says: run the package with -workers=1 for the
// single-loop service of old.
var testWorkers = flag.Int("workers", 2, "sockets (and event loops) per rule in the udp tests")

// options tune a fixture.
type options struct {
	listen   string           // listen host; default 127.0.0.1
	portable bool             // use the portable I/O
	rule     Rule             // Name and Pool are filled in, and timeouts left zero
	cfg      backend.Settings // for the pool: Backends and Balance
	resolver *backend.Resolver
	// workers is how many sockets (and planes) serve the rule; zero:
	// the -workers flag's value.
	workers int
	// beforeServe, if set, runs just before Serve starts.
	beforeServe func()
}

// start runs a service for o until the test ends, when it is drained.
func start(t *testing.T, o options) *fixture {
	t.Helper()
	if o.listen == "" {
		o.listen = "127.0.0.1"
	}
	f := &fixture{logs: newLogRecorder(), table: conntrack.NewTable(), served: make(chan error, 1)}
	logger := slog.New(f.logs)
	o.cfg.Name = "test"
	f.pool = backend.NewPool(o.cfg, o.resolver, logger)
	rule := o.rule
	rule.Name, rule.Pool = "test", f.pool
	if rule.DrainTimeout == 0 {
		rule.DrainTimeout = 2 * time.Second
	}
	if rule.SessionTimeout == 0 {
		rule.SessionTimeout = time.Minute
	}
	if rule.ConnectTimeout == 0 {
		rule.ConnectTimeout = 5 * time.Second
	}
	f.svc = NewService(&rule, Deps{Logger: logger, Table: f.table})
	f.svc.portable = o.portable
	if o.workers == 0 {
		o.workers = *testWorkers
	}
	socks, err := Listen(netip.AddrPortFrom(netip.MustParseAddr(o.listen), 0).String(), o.workers)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	f.socks = socks
	f.addr = socks[0].addr.(*net.UDPAddr)
	if o.beforeServe != nil {
		o.beforeServe()
	}
	go func() { f.served <- f.svc.Serve(socks...) }()
	t.Cleanup(func() {
		// Tests of draining drain for themselves; the others need not wait
		// for their sessions to be quiet.
		f.table.StopAll("closed")
		f.svc.Drain()
		if err := <-f.served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		closeSockets(socks)
		if n := f.table.Len(); n != 0 {
			t.Errorf("%d sessions left in the table after Drain", n)
		}
	})
	return f
}

// backends returns pool settings with the given backends.
func backends(balance string, addrs ...backend.Address) backend.Settings {
	st := backend.Settings{Balance: balance}
	for _, a := range addrs {
		st.Backends = append(st.Backends, backend.Target{Address: a})
	}
	return st
}

// client opens a client socket on host (default 127.0.0.1).
func client(t *testing.T, host string) *net.UDPConn {
	t.Helper()
	if host == "" {
		host = "127.0.0.1"
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(host), 0)))
	if err != nil {
		t.Fatalf("client socket on %s: %v", host, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Loopback drops datagrams too, when the machine is flooded (the kernel's
// backlog queue overflows; see /proc/net/softnet_stat). So an exchange that
// gets no answer sends again, and tests that count datagrams exactly do so
// only when no exchange had to (fixture.lossFree).
const (
	resendAfter = 500 * time.Millisecond
	maxSends    = 8
)

// exchange sends msg from c to to until a reply that want accepts comes
// back from to. Other replies (a late duplicate of an earlier exchange's
// answer, or a corrupted one) are skipped; if nothing acceptable comes, the
// error says what else did.
func (f *fixture) exchange(c *net.UDPConn, to *net.UDPAddr, msg, buf []byte, want func([]byte) bool) ([]byte, error) {
	other := "nothing"
	for sends := 1; sends <= maxSends; sends++ {
		if sends > 1 {
			f.resends.Add(1)
		}
		if _, err := c.WriteToUDP(msg, to); err != nil {
			return nil, fmt.Errorf("send %d bytes: %w", len(msg), err)
		}
		deadline := time.Now().Add(resendAfter)
		for {
			got, err := receive(c, to, buf, time.Until(deadline))
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return nil, err
			}
			if want(got) {
				return got, nil
			}
			other = fmt.Sprintf("a reply of %d bytes that differs", len(got))
		}
	}
	return nil, fmt.Errorf("%s: %d bytes sent %d times, no reply that matches; got %s", c.LocalAddr(), len(msg), maxSends, other)
}

// lossFree reports whether every exchange so far got its answer the first
// time.
func (f *fixture) lossFree() bool { return f.resends.Load() == 0 }

// receive waits up to limit for a datagram on c and checks it comes from
// want.
func receive(c *net.UDPConn, want *net.UDPAddr, buf []byte, limit time.Duration) ([]byte, error) {
	if err := c.SetReadDeadline(time.Now().Add(limit)); err != nil {
		return nil, err
	}
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return nil, fmt.Errorf("%s: no reply: %w", c.LocalAddr(), err)
	}
	if from.Port() != uint16(want.Port) || from.Addr().Unmap() != want.AddrPort().Addr().Unmap() {
		return nil, fmt.Errorf("%s: reply from %v, want from the listening address %v", c.LocalAddr(), from, want)
	}
	return buf[:n], nil
}

// mustExchange is exchange to f.addr that fails the test unless the reply
// is want.
func (f *fixture) mustExchange(t *testing.T, c *net.UDPConn, msg, want string) {
	t.Helper()
	if _, err := f.exchange(c, f.addr, []byte(msg), make([]byte, slotSize), equal([]byte(want))); err != nil {
		t.Fatal(err)
	}
}

// equal returns a reply check for want.
func equal(want []byte) func([]byte) bool {
	return func(got []byte) bool { return bytes.Equal(got, want) }
}
