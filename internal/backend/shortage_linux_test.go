package backend

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fullUnixListener listens on a unix socket at path with a listen queue of
// one and accepts nothing until the test does, and fills its queue: the
// next connect fails with EAGAIN. It returns the listener.
func fullUnixListener(t *testing.T, path string) net.Listener {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		t.Fatal(err)
	}
	ln, err := net.FileListener(f) // a duplicate, with the same queue
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	for range 64 {
		c, err := net.Dial("unix", path)
		if errors.Is(err, syscall.EAGAIN) {
			return ln
		}
		if err != nil {
			t.Fatalf("filling the listen queue: %v", err)
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatal("the listen queue of one took 64 connections")
	return nil
}

// TestUnixFullQueueIsNotBlamed: a unix backend whose listen queue is full
// is busy, not dead. A connect waits for room within the connect timeout
// and succeeds once the backend accepts; one that finds no room in time
// fails with EAGAIN, and however often that happens the backend is never
// marked down.
func TestUnixFullQueueIsNotBlamed(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "q.sock")
	ln := fullUnixListener(t, path)
	addr := Address{Network: "unix", Path: path}
	logs := newLogRecorder()
	rule := Settings{Name: "sock", ConnectTimeout: 300 * time.Millisecond,
		Backends: backends([]Address{addr}, nil)}
	p := NewPool(rule, nil, logs.logger())
	for i := range 2 * passiveFall {
		if _, _, err := p.Dial(context.Background(), netip.Addr{}); !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("dial %d into a full queue: %v, want EAGAIN", i, err)
		}
	}
	if b := p.backends[0]; !b.Up() || logs.count("backend down", "") != 0 || b.Active() != 0 {
		t.Fatalf("after full queues: up=%v, %d backend down lines, active %d; want up, none, 0", b.Up(), logs.count("backend down", ""), b.Active())
	}

	rule.ConnectTimeout = waitLimit
	p = NewPool(rule, nil, logs.logger())
	type dialed struct {
		conn net.Conn
		err  error
	}
	done := make(chan dialed, 1)
	go func() {
		conn, b, err := p.Dial(context.Background(), netip.Addr{})
		if err == nil {
			b.Release()
		}
		done <- dialed{conn, err}
	}()
	logs.waitCount(t, "listen queue full, waiting", addr.String(), 1)
	c, err := ln.Accept() // makes room
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := <-done
	if d.err != nil {
		t.Fatalf("dial once the backend accepted: %v", d.err)
	}
	d.conn.Close()
}

// TestHealthCheckFullQueueCountsNeither: an active health check that
// finds a unix backend's listen queue full until its timeout neither
// passes nor fails; the backend is not marked down for it.
func TestHealthCheckFullQueueCountsNeither(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "h.sock")
	fullUnixListener(t, path)
	addr := Address{Network: "unix", Path: path}
	logs := newLogRecorder()
	hc := &HealthCheck{Interval: 20 * time.Millisecond, Timeout: 20 * time.Millisecond, Rise: 1, Fall: 2}
	p := NewPool(Settings{Name: "sock", HealthCheck: hc, Backends: backends([]Address{addr}, nil)}, nil, logs.logger())
	p.Start()
	defer p.Stop()
	// Each check logs the wait once, as it starts: four mean that three
	// checks have ended and had their say.
	logs.waitCount(t, "listen queue full, waiting", addr.String(), 2*hc.Fall)
	if n := logs.count("backend down", ""); n != 0 || !p.backends[0].Up() {
		t.Fatalf("%d backend down lines, up=%v; want none and up; %v", n, p.backends[0].Up(), logs.Find(about("backend down", "")))
	}
}

// exhaustDescriptors lowers this process's descriptor limit to just above
// the descriptors open now and opens files until none is left, so that
// opening a socket fails with EMFILE. The returned function gives them
// back. Tests that call it must not run in parallel.
func exhaustDescriptors(t *testing.T) (release func()) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	highest := 0
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			highest = max(highest, n)
		}
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = uint64(highest) + 32
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var files []*os.File
	release = func() {
		for _, f := range files {
			f.Close()
		}
		files = nil
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	}
	for {
		f, err := os.Open(os.DevNull)
		if errors.Is(err, syscall.EMFILE) {
			return release
		}
		if err != nil {
			release()
			t.Fatal(err)
		}
		files = append(files, f)
	}
}

// TestOutOfDescriptorsIsNotBlamed: when sluice cannot open a socket for
// want of descriptors, on the net package's path (Dial) and the direct
// one (Attempts), the attempt ends at once with an OpenError and no
// backend is held to blame, however often; once descriptors are free the
// backend serves.
func TestOutOfDescriptorsIsNotBlamed(t *testing.T) {
	one := startNameServer(t, "one", "127.0.0.1:0")
	two := startNameServer(t, "two", "127.0.0.1:0")
	logs := newLogRecorder()
	rule := Settings{Name: "web", Balance: First, Retries: 1, Backends: backends([]Address{one.addr, two.addr}, nil)}
	p := NewPool(rule, nil, logs.logger())
	var dialErr, nextErr []error
	release := exhaustDescriptors(t)
	for range 2 * passiveFall {
		_, _, err := p.Dial(context.Background(), netip.Addr{})
		dialErr = append(dialErr, err)
		var a Attempts
		p.Begin(&a, netip.Addr{}, nil, nil)
		_, err = a.Next()
		nextErr = append(nextErr, err)
	}
	release()
	for i := range dialErr {
		for path, err := range map[string]error{"Dial": dialErr[i], "Attempts.Next": nextErr[i]} {
			var oe *OpenError
			if !errors.As(err, &oe) || !errors.Is(err, syscall.EMFILE) {
				t.Errorf("%s %d out of descriptors: %v, want an OpenError with EMFILE", path, i, err)
			}
		}
	}
	for _, b := range p.backends {
		if !b.Up() || b.ConnectErrors() != 0 || b.Active() != 0 {
			t.Errorf("backend %v: up=%v errors=%d active=%d; want up, 0, 0", b.Address(), b.Up(), b.ConnectErrors(), b.Active())
		}
	}
	if n := logs.count("backend down", ""); n != 0 {
		t.Errorf("%d backend down lines for this process's shortage, want none", n)
	}
	if name, _ := dialName(t, p); name != "one" {
		t.Fatalf("served by %q once descriptors were free, want one", name)
	}
}

// TestShortageIsNotBlamed: what a failed connect says about its backend,
// error by error, as both paths see them.
func TestShortageIsNotBlamed(t *testing.T) {
	dial := func(errno syscall.Errno, call string) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError(call, errno)}
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{os.NewSyscallError("connect", unix.EADDRNOTAVAIL), false},
		{dial(unix.EADDRNOTAVAIL, "connect"), false},
		{dial(unix.EAGAIN, "connect"), false},
		{dial(unix.EMFILE, "socket"), false},
		{dial(unix.ENFILE, "socket"), false},
		{dial(unix.ENOBUFS, "socket"), false},
		{dial(unix.ENOMEM, "socket"), false},
		{&OpenError{os.NewSyscallError("setsockopt", unix.EINVAL)}, false},
		{os.NewSyscallError("connect", unix.ECONNREFUSED), true},
		{dial(unix.ENOENT, "connect"), true},
		{dial(unix.EACCES, "connect"), true},
		{os.ErrDeadlineExceeded, true},
	} {
		if got := Blames(tc.err); got != tc.want {
			t.Errorf("Blames(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
