package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests hold sluice to its promise that load is not death: a
// backend is never marked down for a shortage of sluice's own host (out of
// descriptors) or for being busy (a full listen queue).

// startSlowUnixEcho serves echo on a unix socket at path whose listen
// queue holds backlog connections, accepting one connection per pause at
// most, until the test ends.
func startSlowUnixEcho(t *testing.T, path string, backlog int, pause time.Duration) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, backlog); err != nil {
		t.Fatal(err)
	}
	ln, err := net.FileListener(f) // a duplicate, with the same queue
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
			time.Sleep(pause) // the backend's pace, not a wait for a state
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
}

// burst runs n clients against addr, at most parallel at once; each sends
// a line and reads its echo. It returns the errors of the clients that
// were not served.
func burst(addr string, n, parallel int) []error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := serveOne(addr, fmt.Sprintf("client %d\n", i))
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// serveOne dials addr and makes one round trip of msg through it.
func serveOne(addr, msg string) error {
	c, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		return err
	}
	defer c.Close()
	return roundTrip(c, msg)
}

// accessFailed matches the access lines of connections whose connect
// failed with an error that contains what.
func accessFailed(what string) func(record) bool {
	return func(r record) bool {
		return r.str("msg") == "access" && r.str("end") == "connect-failed" && strings.Contains(r.str("error"), what)
	}
}

// TestUnixBacklogIsLoad: 200 clients at once through a unix backend with a
// listen queue of 16 that accepts slowly. Its queue is full most of the
// time, which is load: every client is served, none gets "no usable
// backend", and the backend is never reported down.
func TestUnixBacklogIsLoad(t *testing.T) {
	t.Parallel()
	const clients = 200
	bePath := filepath.Join(shortTempDir(t), "be.sock")
	startSlowUnixEcho(t, bePath, 16, 10*time.Millisecond)
	p, addrs, _ := launchOps(t, 1, func(a []string) string {
		return fmt.Sprintf("log_format = \"json\"\nlog_level = \"debug\"\n\n[[rule]]\nname = \"sock\"\nlisten = %q\nbackends = [\"unix:%s\"]\nconnect_timeout = \"60s\"\n", a[0], bePath)
	}, nil)

	errs := burst(addrs[0], clients, clients)
	p.waitN(clients, "access lines", isMsg("access"))
	if n := p.count(accessFailed("")); n != 0 || len(errs) != 0 {
		t.Errorf("%d of %d clients not served (%d connect-failed), first: %v", len(errs), clients, n, errors.Join(errs[:min(1, len(errs))]...))
	}
	if n := p.count(isMsg("backend down")); n != 0 {
		t.Errorf("%d backend down lines for a busy backend, want none: %v", n, p.find(isMsg("backend down")))
	}
	if n := p.count(accessFailed("no usable backend")); n != 0 {
		t.Errorf("%d clients got no usable backend, want none", n)
	}
	if p.count(isMsg("listen queue full, waiting")) == 0 {
		t.Error("the backend's listen queue was never full; the test proves nothing")
	}
}

// TestOutOfDescriptorsNetPath: sluice under a descriptor limit of 128, with
// rules that take the net package's path (a bandwidth limit; a backend by
// unix path), and 1,000 clients, 200 at a time: sluice runs out of
// descriptors, which is its own shortage. No backend is reported down for
// it, and once the burst is over every rule serves again.
func TestOutOfDescriptorsNetPath(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	tcpBackend := startBackend(t, echo)
	bePath := filepath.Join(shortTempDir(t), "be.sock")
	startUnixEcho(t, bePath)
	start := func(path string) *proc {
		return startProc(t, nil, "prlimit", "--nofile=128:128", sluiceBin, "-c", path)
	}
	p, addrs, _ := launchOps(t, 2, func(a []string) string {
		return fmt.Sprintf(`log_format = "json"

[[rule]]
name = "bw"
listen = %q
backends = [%q]
bandwidth = "1GB/s"

[[rule]]
name = "sock"
listen = %q
backends = ["unix:%s"]
`, a[0], tcpBackend.addr, a[1], bePath)
	}, start)

	var wg sync.WaitGroup
	for _, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			burst(addr, 1000, 200) // many fail: sluice is out of descriptors
		}()
	}
	wg.Wait()
	t.Logf("out of descriptors: %d clients connect-failed, %d accept pauses",
		p.count(accessFailed("too many open files")), p.count(isMsg("accept paused: file descriptor limit of the process reached (raise LimitNOFILE / ulimit -n); backing off")))
	if p.count(accessFailed("too many open files")) == 0 && p.count(isMsg("accept paused: file descriptor limit of the process reached (raise LimitNOFILE / ulimit -n); backing off")) == 0 {
		t.Fatal("sluice never ran out of descriptors; the test proves nothing")
	}
	if n := p.count(isMsg("backend down")); n != 0 {
		t.Errorf("%d backend down lines for sluice's own shortage, want none: %v", n, p.find(isMsg("backend down")))
	}
	for _, addr := range addrs {
		if err := serveOne(addr, "after the burst\n"); err != nil {
			t.Errorf("through %s after the burst: %v", addr, err)
		}
	}
	if n := p.count(accessFailed("no usable backend")); n != 0 {
		t.Errorf("%d clients got no usable backend, want none", n)
	}
	if !p.running() {
		t.Fatal("sluice exited")
	}
}
