package main

import (
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestTCPListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if ok, err := tcpListening(port); err != nil || !ok {
		t.Fatalf("tcpListening(%d) = %v, %v while listening", port, ok, err)
	}
	ln.Close()
	if ok, err := tcpListening(port); err != nil || ok {
		t.Fatalf("tcpListening(%d) = %v, %v after close", port, ok, err)
	}
}

func TestProcessTreeAndUsage(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep command:", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	tree, err := processTree(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if tree[0] != os.Getpid() || !slices.Contains(tree, cmd.Process.Pid) {
		t.Fatalf("tree %v lacks this process first or its child %d", tree, cmd.Process.Pid)
	}

	self, err := measureUsage([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	more, err := measureUsage([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if self.rssKiB <= 0 || more.fds != self.fds+1 {
		t.Fatalf("usage %+v then %+v after opening one file", self, more)
	}
	// A sleeping process does not change, so its usage sums exactly. Just
	// after exec it may still be faulting pages in: measure until the same
	// usage is read before and after the double count (boundedly).
	var one, twice, after usage
	for range 100 {
		if one, err = measureUsage([]int{cmd.Process.Pid}); err != nil {
			t.Fatal(err)
		}
		if twice, err = measureUsage([]int{cmd.Process.Pid, cmd.Process.Pid}); err != nil {
			t.Fatal(err)
		}
		if after, err = measureUsage([]int{cmd.Process.Pid}); err != nil {
			t.Fatal(err)
		}
		if after == one {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if after != one {
		t.Fatalf("usage of sleep never settled: %+v then %+v", one, after)
	}
	if one.rssKiB <= 0 || one.fds < 3 || twice != (usage{2 * one.rssKiB, 2 * one.fds}) {
		t.Fatalf("usage of sleep %+v, counted twice %+v", one, twice)
	}
}

func TestParentPID(t *testing.T) {
	tests := map[string]struct {
		stat string
		ppid int
		ok   bool
	}{
		"plain":            {"123 (nginx) S 45 123 123 0", 45, true},
		"spaces and paren": {"9 (a) b (c)) R 1 9 9 0", 1, true},
		"truncated":        {"9 (x", 0, false},
	}
	for name, tc := range tests {
		ppid, ok := parentPID([]byte(tc.stat))
		if ppid != tc.ppid || ok != tc.ok {
			t.Errorf("%s: parentPID = %d, %v; want %d, %v", name, ppid, ok, tc.ppid, tc.ok)
		}
	}
}

// TestCPUTime: the CPU time read from /proc grows with work done, the
// process's own and that of children it waited for.
func TestCPUTime(t *testing.T) {
	self := []int{os.Getpid()}
	before, err := cpuTime(self)
	if err != nil {
		t.Fatal(err)
	}
	spin(t, syscall.RUSAGE_SELF, 200*time.Millisecond)
	mid, err := cpuTime(self)
	if err != nil {
		t.Fatal(err)
	}
	if spent := mid - before; spent < 100*time.Millisecond {
		t.Fatalf("CPU time grew by %v over a busy loop that used 200ms", spent)
	}
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
	if err := cmd.Run(); err != nil {
		t.Skip("no sh:", err)
	}
	child := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	after, err := cpuTime(self)
	if err != nil {
		t.Fatal(err)
	}
	if after-mid < child-2*clockTick {
		t.Fatalf("CPU time grew by %v after a child that used %v", after-mid, child)
	}
}

// TestBusiestThread: a thread kept busy while the others wait is the
// busiest, and holds most of the process's CPU time over that period.
func TestBusiestThread(t *testing.T) {
	self := []int{os.Getpid()}
	before, err := threadCPU(self)
	if err != nil {
		t.Fatal(err)
	}
	tid := make(chan int)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		spin(t, rusageThread, 300*time.Millisecond)
		tid <- syscall.Gettid()
	}()
	spinner := <-tid
	after, err := threadCPU(self)
	if err != nil {
		t.Fatal(err)
	}
	busiest, share := busiestThread(before, after)
	if busiest != spinner || share < 0.5 || share > 1 {
		t.Fatalf("busiest thread %d with %.2f of the CPU time; want the spinning thread %d with most of it", busiest, share, spinner)
	}
}

// rusageThread is Linux's RUSAGE_THREAD, which package syscall lacks.
const rusageThread = 1

// spin keeps the CPU busy until who (RUSAGE_SELF, or rusageThread) has used
// d more of it: on a loaded machine a busy loop timed by the clock may get
// little CPU.
func spin(t *testing.T, who int, d time.Duration) {
	used := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			t.Error(err)
			return d
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for start := used(); used()-start < d; {
		for x := range 100000 {
			_ = x * x
		}
	}
}
