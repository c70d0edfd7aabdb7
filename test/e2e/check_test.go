package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCheckErrorsAsRunMode: `sluice check -c` fails on a file that cannot be
// read, or is over the 16 MiB limit, exactly as `sluice -c` does: exit 1 and
// the same "sluice: "-prefixed message naming the file.
func TestCheckErrorsAsRunMode(t *testing.T) {
	t.Parallel()
	// Valid but for its size: a comment over the limit, then a rule.
	big := writeConfig(t, "# "+strings.Repeat("x", 16<<20)+"\n"+validConfig("127.0.0.1:0", "127.0.0.1:9"))
	missing := filepath.Join(t.TempDir(), "missing.toml")
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing file", missing, "sluice: open " + missing + ": no such file or directory\n"},
		{"file over 16 MiB", big, "sluice: " + big + ": config file is larger than the limit of 16 MiB\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, args := range [][]string{{"check", "-c", tc.path}, {"-c", tc.path}} {
				res := runSluice(t, nil, args...)
				if res.code != 1 || res.stdout != "" || res.stderr != tc.want {
					t.Errorf("sluice %q: %v\nwant exit 1 and stderr %q", args, res, tc.want)
				}
			}
		})
	}
}

// TestCheckStopsOnSignal: `sluice check` dies by SIGINT and SIGTERM as any
// command does, even when it is in the middle of reading its config. The
// config is a FIFO that the test opens, writes part of a rule to and holds
// open, so that check is certainly still reading when the signal comes.
func TestCheckStopsOnSignal(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			fifo := filepath.Join(t.TempDir(), "sluice.toml")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			p := startProc(t, nil, sluiceBin, "check", "-c", fifo)
			w := openWriter(t, p, fifo) // returns once check has opened it
			defer w.Close()
			if _, err := w.WriteString("[[rule]]\nname = \"web\"\n"); err != nil {
				t.Fatal(err)
			}
			p.signal(sig)
			select {
			case <-p.exited:
			case <-time.After(waitLimit):
				t.Fatalf("sluice check still running %v after %v", waitLimit, sig)
			}
			var ee *exec.ExitError
			if !errors.As(p.err, &ee) {
				t.Fatalf("sluice check ended with %v after %v, want death by the signal", p.err, sig)
			}
			if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != sig {
				t.Errorf("sluice check ended with %v, want death by %v; stderr:\n%s", ee, sig, p.stderr())
			}
		})
	}
}

// openWriter opens the FIFO at path for writing, which blocks until p opens
// it for reading; it fails the test if p exits or takes too long first.
func openWriter(t *testing.T, p *proc, path string) *os.File {
	t.Helper()
	type opened struct {
		f   *os.File
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		ch <- opened{f, err}
	}()
	select {
	case o := <-ch:
		if o.err != nil {
			t.Fatal(o.err)
		}
		return o.f
	case <-p.exited:
		t.Fatalf("sluice exited before opening %s: %v\n%s", path, p.err, p.stderr())
	case <-time.After(waitLimit):
		t.Fatalf("sluice did not open %s within %v", path, waitLimit)
	}
	return nil
}
