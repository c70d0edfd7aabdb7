package e2e

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpgradeRefusedAsProcessOne: sluice as the first process of a PID
// namespace (as in a container) refuses SIGUSR2, since the kernel would
// kill the new process as soon as this one exited, and goes on serving.
func TestUpgradeRefusedAsProcessOne(t *testing.T) {
	t.Parallel()
	needRoot(t, "for a PID namespace of its own", "unshare")
	be := startBackend(t, echo)
	listen := freeAddr(t)
	p := startProc(t, nil, "unshare", "--pid", "--fork", "--kill-child", sluiceBin,
		"-l", listen, "-r", be.addr, "--log-format", "json")
	if !p.waitListening(listen) {
		if strings.Contains(p.stderr(), "unshare failed") {
			t.Skipf("cannot make a PID namespace here: %s", p.stderr())
		}
		t.Fatalf("sluice did not start in a PID namespace: %v\n%s", p.err, p.stderr())
	}
	p.allowErrors("the upgrade the test asks for is refused: upgrade failed")
	child := childPID(t, p.pid())
	if err := syscall.Kill(child, syscall.SIGUSR2); err != nil {
		t.Fatalf("SIGUSR2 to sluice (pid %d): %v", child, err)
	}
	rec := p.wait("the upgrade's outcome", isMsg("upgrade failed; still serving"))
	if !strings.Contains(rec.str("error"), "process 1") {
		t.Errorf("upgrade refusal %v: want it to name process 1", rec)
	}
	if n := p.count(isMsg("upgrade: starting new process")); n != 0 {
		t.Errorf("%d new processes started, want none", n)
	}
	c := dial(t, listen)
	if err := roundTrip(c, "still here\n"); err != nil {
		t.Fatalf("after the refused upgrade: %v", err)
	}
}

// childPID returns the only child of process pid, waiting for it briefly.
func childPID(t *testing.T, pid int) int {
	t.Helper()
	path := "/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children"
	for deadline := time.Now().Add(waitLimit); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("children of %d: %v", pid, err)
		}
		if f := strings.Fields(string(b)); len(f) == 1 {
			n, err := strconv.Atoi(f[0])
			if err != nil {
				t.Fatalf("children of %d: %q", pid, b)
			}
			return n
		}
	}
	t.Fatalf("process %d has no single child", pid)
	return 0
}
