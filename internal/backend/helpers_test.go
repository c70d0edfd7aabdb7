package backend

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"sluice/internal/testkit/logrec"
	"sluice/internal/testkit/loopback"
)

// waitLimit bounds every wait in these tests; reaching it fails the test.
const waitLimit = 10 * time.Second

// record is one captured log record.
type record = logrec.Record

// logRecorder keeps what the pool logs; tests wait on logged state
// changes, not on time.
type logRecorder struct{ *logrec.Recorder }

func newLogRecorder() *logRecorder { return &logRecorder{logrec.New()} }

// about matches records with msg and, if backend is not empty, that
// backend attribute.
func about(msg, backend string) func(record) bool {
	return func(r record) bool { return r.Msg == msg && (backend == "" || r.Attrs["backend"] == backend) }
}

// count returns how many records have msg and backend.
func (h *logRecorder) count(msg, backend string) int { return len(h.Find(about(msg, backend))) }

// last returns the last record with msg and backend.
func (h *logRecorder) last(msg, backend string) (record, bool) {
	recs := h.Find(about(msg, backend))
	if len(recs) == 0 {
		return record{}, false
	}
	return recs[len(recs)-1], true
}

// waitCount blocks until at least n records match msg and backend.
func (h *logRecorder) waitCount(t *testing.T, msg, backend string, n int) {
	t.Helper()
	h.WaitN(t, n, waitLimit, fmt.Sprintf("%q for backend %q", msg, backend), about(msg, backend))
}

// logger returns a logger writing to h.
func (h *logRecorder) logger() *slog.Logger { return h.Logger() }

// fakeClock is a settable clock for TTLs and cool-downs.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// tcpAddr converts a listener address to a Address.
func tcpAddr(t *testing.T, a net.Addr) Address {
	t.Helper()
	return parseAddr(t, a.String())
}

// nameServer is a real backend: every connection it accepts is sent the
// server's name and a newline, then drained until the peer closes it.
type nameServer struct {
	name string
	ln   net.Listener
	addr Address
}

// startNameServer listens on addr ("127.0.0.1:0" for any port).
func startNameServer(t *testing.T, name, addr string) *nameServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &nameServer{name: name, ln: ln, addr: tcpAddr(t, ln.Addr())}
	go s.serve()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *nameServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			fmt.Fprintln(c, s.name)
			io.Copy(io.Discard, c)
		}()
	}
}

// readName reads the name a nameServer sent on c and closes c.
func readName(t *testing.T, c net.Conn) string {
	t.Helper()
	defer c.Close()
	if err := c.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading backend name: %v", err)
	}
	return line[:len(line)-1]
}

// refusedAddr returns a loopback address where nothing listens.
func refusedAddr(t *testing.T) Address {
	return parseAddr(t, loopback.Refusing(t))
}

// parseAddr returns a loopback host:port as a backend address.
func parseAddr(t *testing.T, hostPort string) Address {
	t.Helper()
	ap, err := netip.ParseAddrPort(hostPort)
	if err != nil {
		t.Fatal(err)
	}
	return Address{Network: "tcp", Host: ap.Addr().String(), Port: ap.Port()}
}

// shortTempDir returns a directory with a path short enough for unix
// sockets.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Clean(dir)
}

// testAddr returns a documentation address (never dialed) for pick tests.
func testAddr(i int) Address {
	return Address{Network: "tcp", Host: fmt.Sprintf("192.0.2.%d", i), Port: 80}
}

// backends builds config backends from addresses with the given weights
// (nil: weight 1 each).
func backends(addrs []Address, weights []int) []Target {
	out := make([]Target, len(addrs))
	for i, a := range addrs {
		out[i] = Target{Address: a, Weight: 1}
		if weights != nil {
			out[i].Weight = weights[i]
		}
	}
	return out
}

// clientIP returns the i-th of a range of distinct client addresses.
func clientIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// indexOf returns the position of b in p's backends.
func indexOf(t *testing.T, p *Pool, b *Backend) int {
	t.Helper()
	for i, x := range p.backends {
		if x == b {
			return i
		}
	}
	t.Fatalf("backend %v is not in the pool", b.Address())
	return -1
}

// mustPick picks and releases at once, returning the index picked.
func mustPick(t *testing.T, p *Pool, client netip.Addr) int {
	t.Helper()
	b, err := p.Pick(client)
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	return indexOf(t, p, b)
}

// markDown fails b passively until it is down.
func markDown(t *testing.T, b *Backend) {
	t.Helper()
	for i := 0; i < 100 && b.Up(); i++ {
		b.ReportFailure(errors.New("test failure"))
	}
	if b.Up() {
		t.Fatalf("backend %v still up after 100 failures", b.Address())
	}
}
