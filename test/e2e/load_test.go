package e2e

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// dialMany opens n connections to addr with a few workers and returns them
// all, still open; the test's cleanup closes them.
func dialMany(t *testing.T, addr string, n int) []*net.TCPConn {
	t.Helper()
	conns := make([]*net.TCPConn, n)
	errs := make([]error, n)
	forEach(n, func(i int) {
		c, err := net.DialTimeout("tcp", addr, waitLimit)
		if err != nil {
			errs[i] = err
			return
		}
		conns[i] = c.(*net.TCPConn)
	})
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("dial %d of %d: %v", i, n, err)
		}
	}
	return conns
}

// forEach calls fn(0) … fn(n-1) on 16 worker goroutines and waits.
func forEach(n int, fn func(i int)) {
	const workers = 16
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// roundTripAll does one distinct round trip on every connection and returns
// the first failure.
func roundTripAll(conns []*net.TCPConn) error {
	errs := make([]error, len(conns))
	forEach(len(conns), func(i int) {
		errs[i] = roundTrip(conns[i], "connection "+strconv.Itoa(i)+"\n")
	})
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("connection %d of %d: %w", i, len(conns), err)
		}
	}
	return nil
}

// waitLive waits until the backend has exactly n connections open.
func (b *backend) waitLive(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for b.live.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("backend has %d connections open, want %d", b.live.Load(), n)
		}
		time.Sleep(10 * time.Millisecond) // poll; the count has no signal
	}
}

// TestManyConcurrentConnections holds 2,000 connections open through sluice
// at the same time, does a round trip on each, and checks every one is
// logged after they close.
func TestManyConcurrentConnections(t *testing.T) {
	const n = 2000
	raiseFDLimit(t, 3*n) // this process: 2n sockets; sluice inherits it and needs 2n
	be := startBackend(t, echo)
	p, addr := launchQuick(t, sluiceBin, nil, be.addr)

	conns := dialMany(t, addr, n)
	be.waitLive(t, n) // all n relayed at once, not one after another
	if err := roundTripAll(conns); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		_ = c.Close()
	}
	recs := p.waitN(n, "access", isMsg("access"))
	for _, r := range recs {
		if r.str("backend") != be.addr || r.num("up") != r.num("down") || r.num("up") < 1 {
			t.Fatalf("access line %v: want backend=%s and as many bytes down as up", r, be.addr)
		}
	}
	be.waitLive(t, 0)
}

// TestFDExhaustion runs sluice with a limit of 64 descriptors, holds more
// connections open than fit, and checks that sluice says it ran out of file
// descriptors, survives, and serves new connections once they are closed.
// It runs twice, with an odd and an even number of descriptors in use at
// start, so that the shortage hits accept itself in one of the runs even
// if it hits the dial to the backend in the other.
func TestFDExhaustion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, prefix string }{
		{"inherited fds 0-2", ""},
		{"inherited fds 0-2 and 9", "exec 9</dev/null; "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := startBackend(t, echo)
			p, addr := launch(t, "bash", func(listen string) []string {
				return []string{"-c", tc.prefix + `ulimit -n 64 && exec "$0" "$@"`, sluiceBin,
					"-l", listen, "-r", be.addr, "--log-format", "json"}
			})
			exhaust(t, p, addr)
		})
	}
}

// exhaust holds more connections to sluice at addr open than its descriptor
// limit allows, waits for the warning, closes them, and checks that sluice
// still runs and a new connection gets through.
func exhaust(t *testing.T, p *proc, addr string) {
	t.Helper()
	conns := dialMany(t, addr, 80) // 2 descriptors each in sluice: at most ~30 fit
	warn := p.wait("warn about file descriptors", func(r record) bool {
		return r.str("level") == "WARN" && strings.Contains(r.String(), "file descriptor")
	})
	t.Logf("sluice said: %v", warn)
	for _, c := range conns {
		_ = c.Close()
	}
	// Sluice may still be short for a moment while it tears the closed
	// connections down (a new one then fails with connect-failed), and it
	// backs off for up to a second between accepts. Within waitLimit a new
	// connection must get through.
	deadline := time.Now().Add(waitLimit)
	for attempt := 1; ; attempt++ {
		c, err := net.DialTimeout("tcp", addr, waitLimit)
		if err == nil {
			err = roundTrip(c, "after the shortage")
			_ = c.Close()
		}
		if err == nil {
			t.Logf("a new connection got through at attempt %d", attempt)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection got through after the shortage, last: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // retry interval; sluice gives no signal
	}
	if !p.running() {
		t.Fatalf("sluice exited: %v", p.err)
	}
}
