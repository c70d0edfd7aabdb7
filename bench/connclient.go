package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// This file is the new-connections figure's client. On a small machine the
// client, the echo backend and the forwarder share the CPUs, and a loopback
// connection costs mostly kernel time, on every end. The forwarder's share
// shows in the figure only if the bench's own share is small: with net.Dial
// and net's accepted connections (about 30 system calls and 32 allocations
// per cycle, both ends together: keepalive and no-delay options,
// getsockname, getpeername, poller registration) the bench was the
// bottleneck and every forwarder measured about as fast as direct.
//
// So the client makes the system calls itself: a non-blocking socket,
// connect, write, read, close. The socket is wrapped in an os.File, whose
// reads and writes wait in Go's poller (a write before the handshake is
// done returns EAGAIN, and the poller waits for the socket to become
// writable). No socket options, no address lookups, no resolver.

// connTarget is where one connection-rate client connects. It is not safe
// for concurrent use: package syscall's socket addresses hold a buffer
// that connect writes, so each client goroutine needs its own.
type connTarget struct {
	sa     syscall.Sockaddr
	family int
}

// newConnTarget parses addr ("127.0.0.1:port" or "[::1]:port") into the
// socket address and family connect needs.
func newConnTarget(addr string) (connTarget, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return connTarget{}, fmt.Errorf("client address: %w", err)
	}
	if ip := ap.Addr().Unmap(); ip.Is4() {
		return connTarget{sa: &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ip.As4()}, family: syscall.AF_INET}, nil
	}
	return connTarget{sa: &syscall.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}, family: syscall.AF_INET6}, nil
}

// cycle connects, writes msg, reads its echo into buf (as long as msg),
// checks it and closes. Waiting for the echo ends at deadline.
func (t connTarget) cycle(msg, buf []byte, deadline time.Time) error {
	f, err := t.connect()
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.SetDeadline(deadline); err != nil {
		return err
	}
	if _, err := f.Write(msg); err != nil {
		return fmt.Errorf("connect or write: %w", bare(err))
	}
	if _, err := io.ReadFull(f, buf); err != nil {
		return fmt.Errorf("read the echo: %w", bare(err))
	}
	return checkEcho(msg, buf)
}

// connect opens a non-blocking socket, starts connecting it and returns it
// registered with the poller. The handshake may still be under way: a
// write waits for it, and reports a refusal.
func (t connTarget) connect() (*os.File, error) {
	fd, err := syscall.Socket(t.family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := syscall.Connect(fd, t.sa); err != nil && err != syscall.EINPROGRESS {
		syscall.Close(fd)
		return nil, fmt.Errorf("connect: %w", err)
	}
	return os.NewFile(uintptr(fd), "client"), nil
}

// bare strips the *os.PathError that os.File wraps its errors in: its path
// says nothing about a socket.
func bare(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
