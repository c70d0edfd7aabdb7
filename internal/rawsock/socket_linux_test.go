package rawsock

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listen returns a TCP listener on loopback address host and the
// descriptor of a duplicate of its socket (non-blocking, as net's are).
func listen(t *testing.T, host string) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Skip("no loopback address", host, err)
	}
	t.Cleanup(func() { ln.Close() })
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var dup int
	var derr error
	rc.Control(func(fd uintptr) { dup, derr = Dup(int(fd)) })
	if derr != nil {
		t.Fatal(derr)
	}
	t.Cleanup(func() { Close(dup) })
	return ln, dup
}

// acceptOne accepts from the listening descriptor lfd, waiting (bounded)
// for a connection; the caller closes it.
func acceptOne(t *testing.T, lfd int) (int, netip.AddrPort) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fd, client, err := Accept(lfd)
		if err == nil {
			return fd, client
		}
		if err != unix.EAGAIN || time.Now().After(deadline) {
			t.Fatalf("Accept: %v", err)
		}
		poll(t, lfd, unix.POLLIN)
	}
}

// poll waits (bounded) for events on fd.
func poll(t *testing.T, fd int, events int16) {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
	if n, err := unix.Poll(fds, 10_000); err != nil && err != unix.EINTR || n == 0 && err == nil {
		t.Fatalf("poll: %d, %v", n, err)
	}
}

// checkFlags checks that fd is non-blocking and close-on-exec.
func checkFlags(t *testing.T, what string, fd int) {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("%s is blocking (flags %#x, %v)", what, fl, err)
	}
	fdfl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || fdfl&unix.FD_CLOEXEC == 0 {
		t.Errorf("%s is not close-on-exec (flags %#x, %v)", what, fdfl, err)
	}
}

// TestAccept: Accept takes a connection from a real listener, non-blocking
// and close-on-exec, with the client's address as the client sees it;
// with none waiting it says EAGAIN.
func TestAccept(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		ln, lfd := listen(t, host)
		if _, _, err := Accept(lfd); err != unix.EAGAIN {
			t.Fatalf("Accept with no client: %v, want EAGAIN", err)
		}
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fd, client := acceptOne(t, lfd)
		defer Close(fd)
		checkFlags(t, "an accepted socket", fd)
		if want := c.LocalAddr().(*net.TCPAddr).AddrPort(); client != want {
			t.Errorf("Accept: client %v, the client says %v", client, want)
		}
		if local, err := LocalAddr(fd); err != nil || local != ln.Addr().(*net.TCPAddr).AddrPort() {
			t.Errorf("LocalAddr = %v, %v; the listener is %v", local, err, ln.Addr())
		}
		if peer, err := PeerAddr(fd); err != nil || peer != client {
			t.Errorf("PeerAddr = %v, %v; Accept said %v", peer, err, client)
		}
	}
}

// TestConnectTCP: a socket from OpenTCP connects to a loopback listener
// without blocking, with Nagle's algorithm off and the congestion control
// asked for; the listener sees it come from LocalAddr.
func TestConnectTCP(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		ln, lfd := listen(t, host)
		to := ln.Addr().(*net.TCPAddr).AddrPort()
		fd, err := OpenTCP(to, "reno")
		if err != nil {
			t.Fatal(err)
		}
		defer Close(fd)
		checkFlags(t, "an opened socket", fd)
		if err := Connect(fd, to); err != nil {
			t.Fatal(err)
		}
		poll(t, fd, unix.POLLOUT)
		if soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); soerr != 0 || err != nil {
			t.Fatalf("connect: SO_ERROR %d, %v", soerr, err)
		}
		if v, _ := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY); v == 0 {
			t.Error("TCP_NODELAY is off")
		}
		// A kernel always names the socket's algorithm; an emulator such
		// as qemu-user may not know the option.
		if cc, err := unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION); cc == "" || err == unix.ENOPROTOOPT {
			t.Logf("no TCP_CONGESTION here: %q, %v", cc, err)
		} else if cc != "reno" {
			t.Errorf("congestion control %q, %v; want reno", cc, err)
		}
		afd, client := acceptOne(t, lfd)
		defer Close(afd)
		if local, err := LocalAddr(fd); err != nil || local != client {
			t.Errorf("LocalAddr = %v, %v; the listener took %v", local, err, client)
		}
		if peer, err := PeerAddr(fd); err != nil || peer != to {
			t.Errorf("PeerAddr = %v, %v; want %v", peer, err, to)
		}
	}
}

// TestConnectRefused: a connect to a port nobody listens on fails: at once
// or through SO_ERROR, as ECONNREFUSED.
func TestConnectRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	to := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close() // the port is free now, and nothing listens on it
	fd, err := OpenTCP(to, "")
	if err != nil {
		t.Fatal(err)
	}
	defer Close(fd)
	err = Connect(fd, to)
	if err == nil {
		poll(t, fd, unix.POLLOUT)
		soerr, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		err = unix.Errno(soerr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("connect to a closed port: %v, want ECONNREFUSED", err)
	}
}

// TestConnectUDP: Connect on an OpenUDP socket connects it (UDP sends
// nothing to connect) to the address net reads back, for many ports and
// an IPv4-mapped address, which goes out as IPv4.
func TestConnectUDP(t *testing.T) {
	for _, port := range ports[1:] {
		for _, a := range []string{"127.0.0.1", "::1", "::ffff:127.0.0.2"} {
			to := netip.AddrPortFrom(netip.MustParseAddr(a), port)
			fd, err := OpenUDP(to)
			if err != nil {
				t.Fatal(err)
			}
			if err := Connect(fd, to); err != nil {
				t.Fatalf("Connect(%v): %v", to, err)
			}
			want := netip.AddrPortFrom(to.Addr().Unmap(), port)
			if peer, err := PeerAddr(fd); err != nil || peer != want {
				t.Errorf("PeerAddr after Connect(%v) = %v, %v", to, peer, err)
			}
			sa, err := unix.Getpeername(fd)
			if xs := xsysAddrPort(sa); err != nil || xs != want {
				t.Errorf("x/sys reads %v, %v after Connect(%v)", xs, err, to)
			}
			Close(fd)
		}
	}
}

// TestPeerAddrAsNetDialed: PeerAddr reads the address of a UDP socket the
// net package connected as net reports it.
func TestPeerAddrAsNetDialed(t *testing.T) {
	for _, port := range ports[1:] {
		for _, a := range []string{"127.0.0.1", "::1"} {
			to := netip.AddrPortFrom(netip.MustParseAddr(a), port)
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
			if err != nil {
				t.Fatal(err)
			}
			rc, _ := c.SyscallConn()
			rc.Control(func(fd uintptr) {
				peer, err := PeerAddr(int(fd))
				if want := c.RemoteAddr().(*net.UDPAddr).AddrPort(); err != nil || peer != want {
					t.Errorf("PeerAddr = %v, %v; net says %v", peer, err, want)
				}
			})
			c.Close()
		}
	}
}

// TestResetClose: the peer of a socket closed by ResetClose sees a reset,
// not an end of stream, even with nothing unsent.
func TestResetClose(t *testing.T) {
	ln, lfd := listen(t, "127.0.0.1")
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fd, _ := acceptOne(t, lfd)
	ResetClose(fd)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read after ResetClose: %v, want ECONNRESET (an end of stream is %v)", err, io.EOF)
	}
}

// TestDup: a duplicate is a second, close-on-exec number for the same
// socket, which stays open when the first is closed.
func TestDup(t *testing.T) {
	ln, lfd := listen(t, "127.0.0.1")
	first, err := Dup(lfd)
	if err != nil {
		t.Fatal(err)
	}
	dup, err := Dup(first)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(dup)
	if dup == first {
		t.Fatalf("Dup returned the same number %d", dup)
	}
	checkFlags(t, "a duplicate", dup)
	Close(first) // dup remains, as do the listener's own socket and lfd
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fd, client := acceptOne(t, dup)
	defer Close(fd)
	if want := c.LocalAddr().(*net.TCPAddr).AddrPort(); client != want {
		t.Errorf("accepted through the duplicate: %v, want %v", client, want)
	}
}

// TestSend: Send writes to a connected socket without blocking: what fits
// goes at once, a full send buffer says so by a short count or EAGAIN, and
// a peer that reset the connection is an error, not a SIGPIPE.
func TestSend(t *testing.T) {
	ln, lfd := listen(t, "127.0.0.1")
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fd, _ := acceptOne(t, lfd)
	defer Close(fd)
	if n, err := Send(fd, []byte("hello")); n != 5 || err != nil {
		t.Fatalf("Send: %d, %v; want 5, nil", n, err)
	}
	got := make([]byte, 5)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "hello" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	big := make([]byte, 64<<20) // more than both buffers hold: c does not read
	if n, err := Send(fd, big); err != nil || n == 0 || n == len(big) {
		t.Fatalf("Send of %d bytes to a peer that does not read: %d, %v; want a short count", len(big), n, err)
	}
	// The kernel may still grow the buffers a little (receive autotuning), so
	// send until they are full: bounded, and a full buffer must say EAGAIN.
	for i := 0; ; i++ {
		n, err := Send(fd, big)
		if errors.Is(err, unix.EAGAIN) {
			if n != 0 {
				t.Fatalf("Send into a full buffer: %d, %v; want 0, EAGAIN", n, err)
			}
			break
		}
		if err != nil || i == 64 {
			t.Fatalf("Send %d to a peer that does not read: %d, %v; want EAGAIN once the buffers are full", i+2, n, err)
		}
	}
	c.(*net.TCPConn).SetLinger(0)
	c.Close() // a reset
	poll(t, fd, unix.POLLERR)
	if _, err := Send(fd, []byte("x")); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Send to a peer that reset: %v, want ECONNRESET or EPIPE", err)
	}
}
