// Package loopback gives tests peers on the loopback interface: a server
// that hands each connection to a function, an address that refuses
// connections, and one that never answers them. Everything it opens is
// closed when the test ends.
package loopback

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Serve listens on 127.0.0.1 and runs handle on each connection, in a
// goroutine of its own, closing the connection when handle returns, until
// the test ends. It returns the listener's address.
func Serve(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ServeOn(t, ln, handle)
	return ln.Addr().String()
}

// ServeOn serves ln, a listener the test opened (a unix socket, say), as
// Serve does, and closes it when the test ends.
func ServeOn(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}

// Refusing returns a loopback address that refuses connections: a port
// that was free a moment ago, so nothing listens on it.
func Refusing(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pick a free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// Silent returns a loopback address that never answers a connect: its
// listener, with a backlog of 0, never accepts, and once one handshake
// fills its queue the kernel drops further SYNs, so a connect to it times
// out instead of failing. It skips the test where the kernel keeps
// completing handshakes.
func Silent(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("silent listener: %v", err)
	}
	syscall.CloseOnExec(fd)
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("silent listener: bind: %v", err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatalf("silent listener: listen: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("silent listener: getsockname: %v", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skipf("the kernel keeps completing handshakes on the full backlog of %s", addr)
	return ""
}
