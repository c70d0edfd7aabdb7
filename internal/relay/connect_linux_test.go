package relay

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sluice/internal/access"
	"sluice/internal/testkit/loopback"
)

// echoAddr returns the address of a server that echoes each connection
// until EOF.
func echoAddr(t *testing.T) netip.AddrPort {
	return netip.MustParseAddrPort(loopback.Serve(t, func(c net.Conn) { io.Copy(c, c) }))
}

// refusingAddr returns a loopback address nothing listens on.
func refusingAddr(t *testing.T) netip.AddrPort {
	return netip.MustParseAddrPort(loopback.Refusing(t))
}

// silentAddr returns a loopback address that never answers a connect.
func silentAddr(t *testing.T) netip.AddrPort {
	return netip.MustParseAddrPort(loopback.Silent(t))
}

// startConnect opens a non-blocking socket to addr and starts its connect.
func startConnect(t *testing.T, addr netip.AddrPort) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Connect(fd, &unix.SockaddrInet4{Addr: addr.Addr().As4(), Port: int(addr.Port())})
	if err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		t.Fatalf("connect %s: %v", addr, err)
	}
	return fd
}

// clientSocket returns a connected client and the descriptor of sluice's
// side of it, non-blocking and the caller's own.
func clientSocket(t *testing.T) (*net.TCPConn, int) {
	t.Helper()
	a, b := connPair(t, "tcp")
	var dup int
	var derr error
	rc, err := b.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) })
	if derr != nil {
		t.Fatal(derr)
	}
	b.Close()
	return a.(*net.TCPConn), dup
}

// outcomes is a connecting relay's Dialer: it records what it was told,
// writes a prelude (if any) on a connected socket, and hands out the next
// sockets to try.
type outcomes struct {
	mu      sync.Mutex
	errs    []error // nil for a success
	next    []int
	fail    error  // given once next is used up
	prelude string // written by Connected
	refuse  int    // how many connected sockets Connected turns down first
}

// errRefused is Connected's error for the sockets it turns down.
var errRefused = errors.New("turned down")

// Connected writes the prelude, unless it turns the socket down.
func (o *outcomes) Connected(fd int) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.refuse > 0 {
		o.refuse--
		return errRefused
	}
	o.errs = append(o.errs, nil)
	if o.prelude != "" {
		if n, err := unix.Write(fd, []byte(o.prelude)); err != nil || n != len(o.prelude) {
			return fmt.Errorf("prelude: %d, %v", n, err)
		}
	}
	return nil
}

// Failed hands out the next socket, or gives up.
func (o *outcomes) Failed(err error) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.errs = append(o.errs, err)
	if len(o.next) == 0 {
		return -1, o.fail
	}
	next := o.next[0]
	o.next = o.next[1:]
	return next, nil
}

// seen returns what the relay told o so far: an error per failed connect,
// nil for a success.
func (o *outcomes) seen() []error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]error(nil), o.errs...)
}

// runConnecting starts a connecting relay and returns a channel with its
// result.
func runConnecting(clientFD int, c Connecting, opts Options) (*Relay, chan Result) {
	r := NewConnecting(clientFD, c, opts)
	done := make(chan Result, 1)
	r.Start(func(res Result) { done <- res })
	return r, done
}

// waitResult waits for a relay's result.
func waitResult(t *testing.T, done chan Result) Result {
	t.Helper()
	select {
	case res := <-done:
		return res
	case <-time.After(5 * time.Second):
		t.Fatal("relay did not finish")
		return Result{}
	}
}

// TestConnectingRelay: the engine waits for the backend's connect, then
// relays; a refused connect is retried on the socket Failed gives, and
// bytes the client sent meanwhile arrive.
func TestConnectingRelay(t *testing.T) {
	e := newEngine(t, 1)
	for _, tc := range []struct {
		name  string
		first func(*testing.T) netip.AddrPort
		fails int
	}{
		{"connects", echoAddr, 0},
		{"refused then next", refusingAddr, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, fd := clientSocket(t)
			o := &outcomes{next: []int{startConnect(t, echoAddr(t))}}
			if _, err := client.Write([]byte("early ")); err != nil {
				t.Fatal(err)
			}
			_, done := runConnecting(fd, Connecting{FD: startConnect(t, tc.first(t)), Timeout: 2 * time.Second, Dialer: o}, Options{Engine: e})
			if _, err := client.Write([]byte("bytes")); err != nil {
				t.Fatal(err)
			}
			client.CloseWrite()
			got, err := io.ReadAll(client)
			if err != nil || string(got) != "early bytes" {
				t.Fatalf("echo: %q, %v; want %q", got, err, "early bytes")
			}
			res := waitResult(t, done)
			if res.End != access.EOF || res.Up != 11 || res.Down != 11 {
				t.Errorf("result %+v: want eof, 11 bytes each way", res)
			}
			errs := o.seen()
			if len(errs) != tc.fails+1 || errs[len(errs)-1] != nil {
				t.Fatalf("outcomes %v: want %d failures, then success", errs, tc.fails)
			}
			if tc.fails > 0 && !errors.Is(errs[0], syscall.ECONNREFUSED) {
				t.Errorf("first outcome %v: want connection refused", errs[0])
			}
		})
	}
}

// TestConnectingGivesUp: a connect that times out, with no other socket to
// try, ends the relay with connect-failed and Failed's error, and the
// client is closed.
func TestConnectingGivesUp(t *testing.T) {
	e := newEngine(t, 1)
	client, fd := clientSocket(t)
	giveUp := errors.New("no backend left")
	o := &outcomes{fail: giveUp}
	_, done := runConnecting(fd, Connecting{FD: startConnect(t, silentAddr(t)), Timeout: 100 * time.Millisecond, Dialer: o}, Options{Engine: e})
	res := waitResult(t, done)
	if res.End != access.ConnectFailed || !errors.Is(res.Err, giveUp) {
		t.Errorf("result %+v: want connect-failed with %v", res, giveUp)
	}
	if errs := o.seen(); len(errs) != 1 || !errors.Is(errs[0], os.ErrDeadlineExceeded) {
		t.Errorf("outcomes %v: want one i/o timeout", errs)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client read %d, %v; want EOF", n, err)
	}
}

// TestConnectingStop: a relay stopped while its backend is still
// connecting ends with the stop's reason; its Dialer is told nothing.
func TestConnectingStop(t *testing.T) {
	e := newEngine(t, 1)
	client, fd := clientSocket(t)
	o := &outcomes{}
	r, done := runConnecting(fd, Connecting{FD: startConnect(t, silentAddr(t)), Dialer: o}, Options{Engine: e})
	waitFor(t, "the relay on the engine", func() bool { return e.Relays() == 1 })
	r.Stop(access.Drained)
	if res := waitResult(t, done); res.End != access.Drained {
		t.Errorf("result %+v: want drained", res)
	}
	if errs := o.seen(); len(errs) != 0 {
		t.Errorf("outcomes %v: want none", errs)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client read: %v; want EOF", err)
	}
}

// TestConnectingWithoutEngine: with no engine to carry it, the relay ends
// at once with connect-failed and closes both sockets.
func TestConnectingWithoutEngine(t *testing.T) {
	client, fd := clientSocket(t)
	o := &outcomes{}
	_, done := runConnecting(fd, Connecting{FD: startConnect(t, echoAddr(t)), Dialer: o}, Options{})
	if res := waitResult(t, done); res.End != access.ConnectFailed || res.Err == nil {
		t.Errorf("result %+v: want connect-failed with an error", res)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client read: %v; want EOF", err)
	}
}

// TestConnectingTimeIsNotIdle: the idle limit counts from the connect's
// success, so a slow connect (here a first backend that never answers,
// then a second) is not taken for a silent client.
func TestConnectingTimeIsNotIdle(t *testing.T) {
	e := newEngine(t, 1)
	client, fd := clientSocket(t)
	o := &outcomes{next: []int{startConnect(t, echoAddr(t))}}
	c := Connecting{FD: startConnect(t, silentAddr(t)), Timeout: 300 * time.Millisecond, Dialer: o}
	_, done := runConnecting(fd, c, Options{Engine: e, IdleTimeout: 200 * time.Millisecond})
	client.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo after a slow connect: %q, %v", buf, err)
	}
	client.CloseWrite()
	if res := waitResult(t, done); res.End != access.EOF {
		t.Errorf("result %+v: want eof", res)
	}
}

// TestConnectingPrelude: what the Dialer writes once connected reaches the
// backend before any of the client's bytes, also those the client sent
// while the backend was still connecting.
func TestConnectingPrelude(t *testing.T) {
	e := newEngine(t, 1)
	client, fd := clientSocket(t)
	o := &outcomes{prelude: "first "}
	if _, err := client.Write([]byte("early ")); err != nil {
		t.Fatal(err)
	}
	_, done := runConnecting(fd, Connecting{FD: startConnect(t, echoAddr(t)), Timeout: 2 * time.Second, Dialer: o}, Options{Engine: e})
	if _, err := client.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	client.CloseWrite()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "first early late" {
		t.Fatalf("echo: %q, %v; want %q", got, err, "first early late")
	}
	// The prelude is not the client's: it counts in neither direction's
	// bytes up, but comes back down as the echo's.
	if res := waitResult(t, done); res.End != access.EOF || res.Up != 10 || res.Down != 16 {
		t.Errorf("result %+v: want eof, 10 bytes up, 16 down", res)
	}
}

// TestConnectingConnectedFails: a connected socket the Dialer turns down
// (its prelude could not be written) is a failed connect: the engine asks
// Failed, with Connected's error, for the next socket, closes the first
// one, and relays over the next.
func TestConnectingConnectedFails(t *testing.T) {
	e := newEngine(t, 1)
	closed := make(chan []byte, 1)
	first := netip.MustParseAddrPort(loopback.Serve(t, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c) // until sluice closes it
		closed <- b
	}))
	client, fd := clientSocket(t)
	o := &outcomes{refuse: 1, next: []int{startConnect(t, echoAddr(t))}}
	if _, err := client.Write([]byte("early")); err != nil {
		t.Fatal(err)
	}
	_, done := runConnecting(fd, Connecting{FD: startConnect(t, first), Timeout: 2 * time.Second, Dialer: o}, Options{Engine: e})
	client.CloseWrite()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(client); err != nil || string(got) != "early" {
		t.Fatalf("echo: %q, %v; want %q", got, err, "early")
	}
	if res := waitResult(t, done); res.End != access.EOF {
		t.Errorf("result %+v: want eof", res)
	}
	if errs := o.seen(); len(errs) != 2 || !errors.Is(errs[0], errRefused) || errs[1] != nil {
		t.Fatalf("told %v: want Connected's error, then a success", errs)
	}
	select {
	case b := <-closed:
		if len(b) != 0 {
			t.Errorf("the turned-down backend got %q, want nothing", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the turned-down socket was not closed")
	}
}
