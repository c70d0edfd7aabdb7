package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// sluiceBin is the path of the sluice executable TestMain builds. It is
// written once, before any test runs, and only read afterwards.
//
// The binary is built with -race when the test binary is, so the race
// detector watches sluice's goroutines in every test, the 256 MiB transfer
// included: sluice relays with splice, so the kernel moves the bytes and the
// race build costs that test nothing measurable (2×256 MiB in about 2 s
// either way on two cores; the test's own hashing is the bottleneck).
var sluiceBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

// testMain builds the binary into a temporary directory, runs the tests
// and removes the directory again. It returns the process exit code. With
// SLUICE_E2E_BINARY set it builds nothing and tests that binary instead
// (a release build, say).
func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sluice-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Another uid runs the binary in the permission test.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	sluiceBin = os.Getenv("SLUICE_E2E_BINARY")
	if sluiceBin == "" {
		sluiceBin = filepath.Join(dir, "sluice")
		if err := buildSluice(sluiceBin, raceEnabled); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
	}
	return m.Run()
}

// buildSluice builds sluice/cmd/sluice into out, with -race if race is set.
// It uses the go command of the toolchain running the tests: `go test` puts
// its own GOROOT/bin first in PATH; a test binary run by hand may say where
// the toolchain is with GOROOT instead.
func buildSluice(out string, race bool) error {
	goTool, err := exec.LookPath("go")
	if err != nil && os.Getenv("GOROOT") != "" {
		goTool, err = filepath.Join(os.Getenv("GOROOT"), "bin", "go"), nil
	}
	if err != nil {
		return fmt.Errorf("building sluice: go command not found in PATH or GOROOT: %w", err)
	}
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "sluice/cmd/sluice")
	cmd := exec.Command(goTool, args...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %v: %w\n%s", args, err, msg)
	}
	return nil
}

// raiseFDLimit makes sure this process, and the sluice processes it starts
// from now on, may open at least need file descriptors. It skips the test
// when the limit cannot be raised that far.
func raiseFDLimit(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("getrlimit RLIMIT_NOFILE: %v", err)
	}
	if lim.Cur >= need {
		return
	}
	lim.Cur = need
	if lim.Max < need {
		lim.Max = need // works only with CAP_SYS_RESOURCE
	}
	// An explicit Setrlimit also stops os/exec from restoring the original
	// soft limit in child processes, so sluice inherits the raised limit.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("need RLIMIT_NOFILE >= %d: %v", need, err)
	}
}
