package e2e

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testkit/loopback"
)

// backend is a loopback TCP server that runs handle for every connection on
// its own goroutine. The test's cleanup closes the listener and every live
// connection and waits for the handlers to return.
type backend struct {
	addr     string
	ln       *net.TCPListener
	handle   func(*net.TCPConn)
	done     chan struct{} // closed when the test ends
	wg       sync.WaitGroup
	accepted atomic.Int64 // connections accepted so far
	live     atomic.Int64 // connections whose handler has not returned

	mu     sync.Mutex // guards the following fields
	conns  map[*net.TCPConn]struct{}
	closed bool // set by close; later connections are closed at once
}

// startBackend listens on 127.0.0.1:0 and serves handle.
func startBackend(t *testing.T, handle func(*net.TCPConn)) *backend {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("backend listen: %v", err)
	}
	b := &backend{
		addr: ln.Addr().String(), ln: ln, handle: handle,
		done: make(chan struct{}), conns: make(map[*net.TCPConn]struct{}),
	}
	b.wg.Add(1)
	go b.serve()
	t.Cleanup(b.close)
	return b
}

// serve accepts until the listener is closed.
func (b *backend) serve() {
	defer b.wg.Done()
	for {
		c, err := b.ln.AcceptTCP()
		if err != nil {
			return
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			_ = c.Close()
			return
		}
		b.conns[c] = struct{}{}
		b.mu.Unlock()
		b.accepted.Add(1)
		b.live.Add(1)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer b.live.Add(-1)
			b.handle(c)
			b.mu.Lock()
			delete(b.conns, c)
			b.mu.Unlock()
			_ = c.Close()
		}()
	}
}

// close stops the backend and waits for its handlers.
func (b *backend) close() {
	close(b.done)
	_ = b.ln.Close()
	b.mu.Lock()
	b.closed = true
	for c := range b.conns {
		_ = c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// echo sends back everything it reads and passes the client's FIN on.
func echo(c *net.TCPConn) {
	if _, err := io.Copy(c, c); err == nil {
		_ = c.CloseWrite()
	}
}

// answerAfterEOF reads until the client half-closes, then answers with the
// byte count and SHA-256 of what it read ("<n> <hex>\n") and closes.
func answerAfterEOF(c *net.TCPConn) {
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		return
	}
	fmt.Fprintf(c, "%d %x\n", n, h.Sum(nil))
}

// trickle returns a slow backend that sends one byte every interval, count
// times, and then closes.
func trickle(interval time.Duration, count int) func(*net.TCPConn) {
	return func(c *net.TCPConn) {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; i < count; i++ {
			<-tick.C
			if _, err := c.Write([]byte{byte('a' + i%26)}); err != nil {
				return
			}
		}
		_ = c.CloseWrite()
	}
}

// handoff passes c to the test through ch and keeps it open until the test
// ends; the test owns the connection meanwhile.
func (b *backend) handoff(c *net.TCPConn, ch chan<- *net.TCPConn) {
	select {
	case ch <- c:
		<-b.done
	case <-b.done:
	}
}

// startHandoffBackend starts a backend whose connections the test drives
// itself; each accepted connection arrives on the returned channel.
func startHandoffBackend(t *testing.T) (*backend, <-chan *net.TCPConn) {
	t.Helper()
	ch := make(chan *net.TCPConn, 16)
	var b *backend
	// The handler needs b, which exists only once startBackend returns.
	ready := make(chan struct{})
	b = startBackend(t, func(c *net.TCPConn) {
		<-ready
		b.handoff(c, ch)
	})
	close(ready)
	return b, ch
}

// next returns the next connection from a handoff backend.
func next(t *testing.T, ch <-chan *net.TCPConn) *net.TCPConn {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(waitLimit):
		t.Fatalf("no connection reached the backend within %v", waitLimit)
		return nil
	}
}

// freeAddr returns a loopback address nothing listens on right now. It is
// what the tests give sluice to listen on, and what they use as a backend
// that refuses connections.
func freeAddr(t *testing.T) string { return loopback.Refusing(t) }

// blackholeAddr returns a loopback address whose listener never accepts, so
// a connect to it times out instead of failing at once.
func blackholeAddr(t *testing.T) string { return loopback.Silent(t) }

// dial connects to sluice at addr; the test's cleanup closes the connection.
func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip writes msg on c and checks that the same bytes come back (from
// an echo backend) within waitLimit.
func roundTrip(c net.Conn, msg string) error {
	if err := c.SetDeadline(time.Now().Add(waitLimit)); err != nil {
		return err
	}
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return fmt.Errorf("write to %s: %w", c.RemoteAddr(), err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read echo from %s: %w", c.RemoteAddr(), err)
	}
	if string(got) != msg {
		return fmt.Errorf("echo from %s: got %q, want %q", c.RemoteAddr(), got, msg)
	}
	return nil
}

// readLine reads one line from c within waitLimit.
func readLine(c net.Conn) (string, error) {
	if err := c.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
		return "", err
	}
	defer c.SetReadDeadline(time.Time{})
	return bufio.NewReader(c).ReadString('\n')
}

// readEnd reads from c until it ends and returns what ended it: nil for a
// clean EOF, or the error. A read that outlasts waitLimit is an error too.
func readEnd(c net.Conn) (int64, error) {
	if err := c.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
		return 0, err
	}
	return io.Copy(io.Discard, c)
}

// waitRefused dials addr until a connect is refused, closing the connections
// that still get through, and fails the test if that does not happen within
// waitLimit.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		if err == nil {
			_ = c.Close()
		}
		time.Sleep(20 * time.Millisecond) // poll interval; nothing to wait on
	}
	t.Fatalf("connects to %s still accepted after %v", addr, waitLimit)
}
