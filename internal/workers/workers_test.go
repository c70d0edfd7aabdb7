package workers

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond, boundedly.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestRunsEveryTask(t *testing.T) {
	p := New(4, time.Minute)
	defer p.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int]bool{}
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		p.Go(func() {
			defer wg.Done()
			mu.Lock()
			seen[i] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(seen) != 1000 {
		t.Fatalf("%d of 1000 tasks ran", len(seen))
	}
	if n := p.Idle(); n > 4 {
		t.Fatalf("%d idle workers, more than the cap of 4", n)
	}
}

// TestReusesWorkers: sequential tasks run on one goroutine.
func TestReusesWorkers(t *testing.T) {
	p := New(4, time.Minute)
	defer p.Close()
	before := runtime.NumGoroutine()
	for i := 0; i < 100; i++ {
		done := make(chan struct{})
		p.Go(func() { close(done) })
		<-done
		waitFor(t, "the worker to go idle", func() bool { return p.Idle() == 1 })
	}
	if n := runtime.NumGoroutine(); n > before+1 {
		t.Fatalf("%d goroutines after 100 sequential tasks, %d before", n, before)
	}
}

// TestIdleWorkersEnd: idle workers end after idleTime, and all end on Close.
// The eight tasks run at once, so that they take eight workers, and the
// idle time is long enough (a second) for the test to see all eight idle
// even on a loaded machine.
func TestIdleWorkersEnd(t *testing.T) {
	before := runtime.NumGoroutine()
	p := New(8, time.Second)
	var started sync.WaitGroup
	hold := make(chan struct{})
	for i := 0; i < 8; i++ {
		started.Add(1)
		p.Go(func() { started.Done(); <-hold })
	}
	started.Wait()
	close(hold)
	waitFor(t, "workers to go idle", func() bool { return p.Idle() == 8 })
	waitFor(t, "idle workers to end", func() bool { return p.Idle() == 0 })
	p.Close()
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestGoAfterClose(t *testing.T) {
	p := New(2, time.Minute)
	p.Close()
	done := make(chan struct{})
	p.Go(func() { close(done) })
	<-done
	if p.Idle() != 0 {
		t.Fatal("a closed pool keeps idle workers")
	}
}

// BenchmarkGo compares a task on a pooled worker with a plain goroutine.
func BenchmarkGo(b *testing.B) {
	deep := func(n int) int {
		var buf [512]byte
		buf[n%512] = byte(n)
		return int(buf[(n+1)%512])
	}
	b.Run("pool", func(b *testing.B) {
		p := New(64, time.Minute)
		defer p.Close()
		var wg sync.WaitGroup
		for i := 0; i < b.N; i++ {
			wg.Add(1)
			p.Go(func() { deep(i); wg.Done() })
		}
		wg.Wait()
	})
	b.Run("go", func(b *testing.B) {
		var wg sync.WaitGroup
		for i := 0; i < b.N; i++ {
			wg.Add(1)
			go func() { deep(i); wg.Done() }()
		}
		wg.Wait()
	})
}
