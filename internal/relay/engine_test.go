package relay

import (
	"io"
	"runtime"
	"testing"
	"time"

	"sluice/internal/access"
)

// eachEngine runs test twice: with relays on goroutines of their own (e is
// nil) and on an engine's event loops, where the platform has them.
func eachEngine(t *testing.T, test func(t *testing.T, e *Engine)) {
	t.Run("goroutines", func(t *testing.T) { test(t, nil) })
	t.Run("engine", func(t *testing.T) { test(t, newEngine(t, 2)) })
}

// newEngine returns an engine with n loops that is closed when the test
// ends (see engineOrSkip).
func newEngine(t *testing.T, n int) *Engine {
	t.Helper()
	e := engineOrSkip(t, n)
	// Cleanups run last-in first-out: this one, registered before the
	// test's pairs, runs after their relays were stopped.
	t.Cleanup(func() {
		waitFor(t, "relays to leave the engine", func() bool { return e.Relays() == 0 })
		e.Close()
	})
	return e
}

// engineOrSkip returns a new engine with n loops. Where the platform has
// none it skips the test; on Linux, where sluice always runs on one, an
// engine that cannot start fails it, so that a broken engine cannot hide
// behind skipped tests.
func engineOrSkip(t *testing.T, n int) *Engine {
	t.Helper()
	e, err := NewEngine(n)
	switch {
	case err == nil:
		return e
	case runtime.GOOS == "linux":
		t.Fatalf("NewEngine(%d) on Linux: %v", n, err)
	default:
		t.Skip(err)
	}
	return nil
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestEngineHoldsNoGoroutines: relays on an engine, busy or idle, cost no
// goroutine each; the engine's count follows them and drops to zero.
func TestEngineHoldsNoGoroutines(t *testing.T) {
	e := newEngine(t, 2)
	pools := NewPools(0)
	defer pools.Close()
	before := runtime.NumGoroutine()
	const n = 100
	pairs := make([]*pair, n)
	for i := range pairs {
		pairs[i] = startPair(t, "tcp", Options{Engine: e, Pools: pools})
	}
	waitFor(t, "relays on the engine", func() bool { return e.Relays() == n })
	buf := make([]byte, 5)
	for i, p := range pairs {
		if _, err := p.client.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(p.server, buf); err != nil || string(buf) != "hello" {
			t.Fatalf("relay %d: %q, %v", i, buf, err)
		}
	}
	// startPair's Run waits on a goroutine per pair, and the far ends
	// need none: allow those, and a few for the runtime.
	if extra := runtime.NumGoroutine() - before; extra > n+10 {
		t.Fatalf("%d goroutines more for %d relays on the engine, want about %d", extra, n, n)
	}
	if lent := waitLent(pools); lent != 0 {
		t.Fatalf("%d carriers lent while the relays are idle", lent)
	}
	for _, p := range pairs {
		p.client.Close()
		p.server.Close()
		if r := p.wait(t); r.End != access.EOF || r.Up != 5 {
			t.Fatalf("result %+v", r)
		}
	}
	waitFor(t, "relays to leave the engine", func() bool { return e.Relays() == 0 })
}

// TestEngineStopBeforeStart: a relay stopped before it starts (a drain
// that began while it was dialing) finishes at once and never joins the
// engine.
func TestEngineStopBeforeStart(t *testing.T) {
	e := newEngine(t, 1)
	client, front := connPair(t, "tcp")
	back, server := connPair(t, "tcp")
	defer client.Close()
	defer server.Close()
	r := New(front, back, Options{Engine: e})
	r.Stop(access.Drained)
	res := r.Run()
	if res.End != access.Drained {
		t.Fatalf("result %+v", res)
	}
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read after stop: %v, want EOF", err)
	}
	if n := e.Relays(); n != 0 {
		t.Fatalf("%d relays on the engine", n)
	}
}

// TestEngineClosedFallsBack: an engine that was closed turns relays away,
// and they run on goroutines instead.
func TestEngineClosedFallsBack(t *testing.T) {
	e := engineOrSkip(t, 1)
	e.Close()
	client, front := connPair(t, "tcp")
	back, server := connPair(t, "tcp")
	p := &pair{client: client, server: server, relay: New(front, back, Options{Engine: e}), result: make(chan Result, 1)}
	go func() { p.result <- p.relay.Run() }()
	if _, err := p.client.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(p.server, buf); err != nil || string(buf) != "abc" {
		t.Fatalf("got %q, %v", buf, err)
	}
	p.client.Close()
	p.server.Close()
	if r := p.wait(t); r.End != access.EOF {
		t.Fatalf("result %+v", r)
	}
	if p.relay.onLoop() {
		t.Fatal("a closed engine took the relay")
	}
}

// TestEngineFairness: a relay streaming without end does not starve
// another relay on the same loop.
func TestEngineFairness(t *testing.T) {
	e := newEngine(t, 1)
	bulk := startPair(t, "tcp", Options{Engine: e})
	go func() {
		buf := make([]byte, 256<<10)
		for {
			if _, err := bulk.client.Write(buf); err != nil {
				return
			}
		}
	}()
	go io.Copy(io.Discard, bulk.server)
	small := startPair(t, "tcp", Options{Engine: e})
	go io.Copy(small.server, small.server) // echo
	buf := make([]byte, 4)
	for i := range 100 {
		if _, err := small.client.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(small.client, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("round trip %d beside a bulk relay: %q, %v", i, buf, err)
		}
	}
}
