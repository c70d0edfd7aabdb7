package backend

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sluice/internal/testkit/loopback"
)

// waitConnect waits for a socket's non-blocking connect to finish and
// returns its error, as an event loop would.
func waitConnect(t *testing.T, fd int) error {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	if n, err := unix.Poll(fds, 5000); err != nil || n != 1 {
		t.Fatalf("poll: %d, %v", n, err)
	}
	soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		t.Fatal(err)
	}
	if soerr != 0 {
		return os.NewSyscallError("connect", unix.Errno(soerr))
	}
	return nil
}

// TestAttemptsTryNext: a refused connect counts against its backend and
// the next backend is tried; the connected one is handed out until
// Release.
func TestAttemptsTryNext(t *testing.T) {
	refused := refusedAddr(t)
	good := startNameServer(t, "good", "127.0.0.1:0")
	rule := Settings{Name: "web", Balance: First, Retries: 1,
		Backends: backends([]Address{refused, good.addr}, nil)}
	p := NewPool(rule, nil, nil)
	if !p.Direct() {
		t.Fatal("a pool of IP addresses is not Direct")
	}
	var a Attempts
	p.Begin(&a, netip.MustParseAddr("127.0.0.1"), nil, nil)
	fd, err := a.Next()
	if err != nil {
		t.Fatal(err)
	}
	cerr := waitConnect(t, fd)
	if !errors.Is(cerr, syscall.ECONNREFUSED) {
		t.Fatalf("first connect: %v, want refused", cerr)
	}
	unix.Close(fd)
	if fd, err = a.Failed(cerr); err != nil {
		t.Fatal(err)
	}
	if err := waitConnect(t, fd); err != nil {
		t.Fatalf("second connect: %v", err)
	}
	b, err := a.Connected(fd)
	if err != nil {
		t.Fatal(err)
	}
	if b.Address() != good.addr {
		t.Fatalf("connected to %v, want %v", b.Address(), good.addr)
	}
	f := os.NewFile(uintptr(fd), "")
	conn, err := net.FileConn(f) // a duplicate
	f.Close()                    // closes fd
	if err != nil {
		t.Fatal(err)
	}
	if name := readName(t, conn); name != "good" {
		t.Fatalf("served by %q, want good", name)
	}
	bad := p.backends[0]
	if bad.ConnectErrors() != 1 || b.ConnectErrors() != 0 || bad.Active() != 0 || b.Active() != 1 {
		t.Fatalf("errors %d/%d active %d/%d; want 1/0 and 0/1", bad.ConnectErrors(), b.ConnectErrors(), bad.Active(), b.Active())
	}
	b.Release()
}

// TestAttemptsGiveUp: after 1+Retries failures the error names the rule,
// the backend and the cause, as Dial's does; with every backend down, Next
// fails at once with ErrNoBackend.
func TestAttemptsGiveUp(t *testing.T) {
	refused := refusedAddr(t)
	rule := Settings{Name: "web", Retries: 0, Backends: backends([]Address{refused}, nil)}
	p := NewPool(rule, nil, nil)
	var a Attempts
	for i := range passiveFall {
		p.Begin(&a, netip.Addr{}, nil, nil)
		fd, err := a.Next()
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		cerr := waitConnect(t, fd)
		unix.Close(fd)
		_, err = a.Failed(cerr)
		for _, want := range []string{`rule "web"`, "backend " + refused.String(), "connection refused"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("attempt %d: error %v does not contain %q", i, err, want)
			}
		}
	}
	p.Begin(&a, netip.Addr{}, nil, nil)
	if _, err := a.Next(); !errors.Is(err, ErrNoBackend) {
		t.Fatalf("with the backend down: %v, want ErrNoBackend", err)
	}
	if n := p.backends[0].Active(); n != 0 {
		t.Fatalf("active %d, want 0", n)
	}
}

// TestDirect: only pools whose every backend is a TCP IP address are
// Direct.
func TestDirect(t *testing.T) {
	for _, tc := range []struct {
		addrs []Address
		want  bool
	}{
		{[]Address{{Network: "tcp", Host: "127.0.0.1", Port: 1}, {Network: "tcp", Host: "::1", Port: 2}}, true},
		{[]Address{{Network: "tcp", Port: 3}}, true},
		{[]Address{{Network: "tcp", Host: "127.0.0.1", Port: 1}, {Network: "tcp", Host: "localhost", Port: 2}}, false},
		{[]Address{{Network: "unix", Path: "/run/x.sock"}}, false},
	} {
		if got := NewPool(Settings{Name: "r", Backends: backends(tc.addrs, nil)}, nil, nil).Direct(); got != tc.want {
			t.Errorf("%v: Direct %v, want %v", tc.addrs, got, tc.want)
		}
	}
}

// TestAttemptsIPv6: a backend on an IPv6 address connects too.
func TestAttemptsIPv6(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback:", err)
	} else {
		ln.Close()
	}
	srv := startNameServer(t, "six", "[::1]:0")
	p := NewPool(Settings{Name: "v6", Backends: backends([]Address{srv.addr}, nil)}, nil, nil)
	var a Attempts
	p.Begin(&a, netip.MustParseAddr("::1"), nil, nil)
	fd, err := a.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := waitConnect(t, fd); err != nil {
		t.Fatalf("connect to %v: %v", srv.addr, err)
	}
	b, err := a.Connected(fd)
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	f := os.NewFile(uintptr(fd), "")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if name := readName(t, conn); name != "six" {
		t.Fatalf("served by %q, want six", name)
	}
}

// preludeServer is a backend that reads what a connection sends until the
// peer closes it, and passes it on, or, when reset is not nil, resets each
// connection it accepts once reset is told to, and passes on "reset".
func preludeServer(t *testing.T, reset chan struct{}) (Address, chan string) {
	got := make(chan string, 4)
	addr := loopback.Serve(t, func(c net.Conn) {
		if reset != nil {
			<-reset
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			got <- "reset"
			return
		}
		c.SetReadDeadline(time.Now().Add(waitLimit))
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	return parseAddr(t, addr), got
}

// TestAttemptsPrelude: Connected writes the prelude to the socket before
// anything else. A prelude that cannot be written (the backend reset the
// connection as soon as it took it) is a failed connect, held against that
// backend, and the next one is tried.
func TestAttemptsPrelude(t *testing.T) {
	// The reset comes once the connect is seen to succeed: sooner, the
	// connect itself would fail with it, and Failed would get it.
	doReset := make(chan struct{}, 1)
	resets, reset := preludeServer(t, doReset)
	reads, read := preludeServer(t, nil)
	p := NewPool(Settings{Name: "web", Balance: First, Retries: 1, Backends: backends([]Address{resets, reads}, nil)}, nil, nil)
	var a Attempts
	p.Begin(&a, netip.MustParseAddr("127.0.0.1"), []byte("PROXY etc\r\n"), nil)
	fd, err := a.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := waitConnect(t, fd); err != nil {
		t.Fatal(err)
	}
	doReset <- struct{}{}
	<-reset
	// Wait for the reset to arrive, as an event loop would see it.
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 5000); n != 1 || err != nil || fds[0].Revents&(unix.POLLERR|unix.POLLHUP) == 0 {
		t.Fatalf("poll for the reset: %d, %v, revents %#x", n, err, fds[0].Revents)
	}
	_, werr := a.Connected(fd)
	unix.Close(fd)
	if !errors.Is(werr, syscall.ECONNRESET) && !errors.Is(werr, syscall.EPIPE) {
		t.Fatalf("Connected to a backend that reset: %v, want ECONNRESET or EPIPE", werr)
	}
	if fd, err = a.Failed(werr); err != nil {
		t.Fatal(err)
	}
	if err := waitConnect(t, fd); err != nil {
		t.Fatal(err)
	}
	b, err := a.Connected(fd)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if got := <-read; got != "PROXY etc\r\n" {
		t.Fatalf("backend read %q, want the prelude", got)
	}
	if b.Address() != reads || p.backends[0].ConnectErrors() != 1 || b.Active() != 1 {
		t.Fatalf("connected to %v (active %d), first backend's errors %d; want %v, 1, 1", b.Address(), b.Active(), p.backends[0].ConnectErrors(), reads)
	}
	b.Release()
}

// TestAttemptsReplayDirect: on the direct path Connected writes the header
// and then the replay, in one send.
func TestAttemptsReplayDirect(t *testing.T) {
	reads, read := preludeServer(t, nil)
	p := NewPool(Settings{Name: "web", Backends: backends([]Address{reads}, nil)}, nil, nil)
	for _, tc := range []struct{ header, replay, want string }{
		{"PROXY etc\r\n", "GET / HTTP/1.1\r\n", "PROXY etc\r\nGET / HTTP/1.1\r\n"},
		{"", "\x16\x03\x01", "\x16\x03\x01"},
	} {
		var a Attempts
		p.Begin(&a, netip.MustParseAddr("127.0.0.1"), []byte(tc.header), []byte(tc.replay))
		fd, err := a.Next()
		if err != nil {
			t.Fatal(err)
		}
		if err := waitConnect(t, fd); err != nil {
			t.Fatal(err)
		}
		b, err := a.Connected(fd)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		b.Release()
		if got := <-read; got != tc.want {
			t.Errorf("backend read %q, want %q", got, tc.want)
		}
	}
}
