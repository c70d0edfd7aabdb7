package backend

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
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
	p.Begin(&a, netip.MustParseAddr("127.0.0.1"))
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
	b := a.Succeeded()
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
		p.Begin(&a, netip.Addr{})
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
	p.Begin(&a, netip.Addr{})
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
	p.Begin(&a, netip.MustParseAddr("::1"))
	fd, err := a.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := waitConnect(t, fd); err != nil {
		t.Fatalf("connect to %v: %v", srv.addr, err)
	}
	a.Succeeded().Release()
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
