package epoll

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// eventfd returns a non-blocking eventfd closed when the test ends.
func eventfd(t *testing.T) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// one is what signal writes to an eventfd.
var one = []byte{1, 0, 0, 0, 0, 0, 0, 0}

// signal makes an eventfd readable.
func signal(fd int) { unix.Write(fd, one) }

// TestWaitReturnsKeyedEvents: a descriptor's readiness comes back from Wait
// with the key it was added under, and Poll finds nothing while nothing is
// ready.
func TestWaitReturnsKeyedEvents(t *testing.T) {
	s, err := New("test", 8)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fd := eventfd(t)
	const key = 1<<40 | 7
	ev := Keyed(unix.EPOLLIN|unix.EPOLLET, key)
	if err := s.Add(fd, &ev); err != nil {
		t.Fatal(err)
	}
	if got := s.Poll(); len(got) != 0 {
		t.Fatalf("Poll with nothing ready: %v", got)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		signal(fd)
	}()
	events, err := s.Wait()
	if err != nil || len(events) != 1 || Key(&events[0]) != key || events[0].Events&unix.EPOLLIN == 0 {
		t.Fatalf("Wait: %v, %v; want one EPOLLIN with key %#x", events, err, uint64(key))
	}
}

// waiting reports whether a goroutine waits in the Go runtime's poller
// inside Set.Wait.
func waiting() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[IO wait") && strings.Contains(g, "epoll.(*Set).Wait(") {
			return true
		}
	}
	return false
}

// TestCloseEndsWait: closing the set ends a Wait in progress with an error.
func TestCloseEndsWait(t *testing.T) {
	s, err := New("test", 8)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Wait()
		done <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); !waiting(); {
		if time.Now().After(deadline) {
			t.Fatal("Wait did not start waiting")
		}
		time.Sleep(time.Millisecond)
	}
	s.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Wait on a closed set returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait went on after Close")
	}
}

// TestWaitAllocatesNothing: a Wait that returns a ready event takes no
// allocation. (Its name matches Alloc, so that the allocation tests can be
// run together without the race detector.)
func TestWaitAllocatesNothing(t *testing.T) {
	s, err := New("test", 8)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fd := eventfd(t)
	ev := Keyed(unix.EPOLLIN|unix.EPOLLET, 7)
	if err := s.Add(fd, &ev); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		signal(fd)
		if events, err := s.Wait(); err != nil || len(events) != 1 {
			t.Fatalf("Wait: %v, %v; want one event", events, err)
		}
	})
	if allocs != 0 {
		t.Errorf("Wait allocates %.1f times per call, want none", allocs)
	}
}
