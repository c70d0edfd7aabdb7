package logsink

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// readLines returns the lines of the files at paths, failing on a line cut
// short.
func readLines(t *testing.T, paths ...string) []string {
	t.Helper()
	var lines []string
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 0 && data[len(data)-1] != '\n' {
			t.Errorf("%s ends in the middle of a line", p)
		}
		for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			if l == "" {
				continue
			}
			if !strings.HasSuffix(l, " of a log that someone reads") {
				t.Errorf("%s: mangled line %q", p, l)
			}
			lines = append(lines, l)
		}
	}
	return lines
}

// TestReopenLosesNoLine rotates a log as logrotate does, rename then
// SIGUSR1's Reopen, again and again while writers write through a Queue:
// every line is in one of the files, whole, once.
func TestReopenLosesNoLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	f, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	q := NewQueue(f, QueueOptions{Lines: 1 << 20, Bytes: 1 << 30})
	const n, rotations = 40000, 20
	paths := []string{path}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		writeLines(q, n, 8)
	}()
	for i := range rotations {
		old := fmt.Sprintf("%s.%d", path, i)
		if err := os.Rename(path, old); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, old)
		if err := f.Reopen(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if err := q.Close(waitLimit); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if q.Dropped() != 0 {
		t.Fatalf("dropped %d lines", q.Dropped())
	}
	lines := readLines(t, paths...)
	seen := make(map[string]bool, n)
	for _, l := range lines {
		if seen[l] {
			t.Errorf("line twice: %q", l)
		}
		seen[l] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct lines in %d files, want %d", len(seen), len(paths), n)
	}
}

// TestReopenWritesDirect is TestReopenLosesNoLine without the queue:
// concurrent Writes on the File itself race the swaps.
func TestReopenWritesDirect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "main.log")
	f, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const n = 20000
	paths := []string{path}
	done := make(chan struct{})
	go func() {
		defer close(done)
		writeLines(f, n, 8)
	}()
	for i := 0; ; i++ {
		select {
		case <-done:
			if got := len(readLines(t, paths...)); got != n {
				t.Errorf("%d lines in %d files, want %d", got, len(paths), n)
			}
			return
		default:
		}
		old := fmt.Sprintf("%s.%d", path, i)
		if err := os.Rename(path, old); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, old)
		if err := f.Reopen(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReopenFailureKeepsFile holds that a reopen that cannot open the path
// keeps writing to the file it has, and that a new file gets the mode of
// the one it replaces.
func TestReopenFailureKeepsFile(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(logs, "sluice.log")
	f, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o640&^umask() {
		t.Errorf("new log file: %v, mode %v, want %v", err, st.Mode().Perm(), 0o640&^umask())
	}
	fmt.Fprintln(f, "one")
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(logs, moved); err != nil { // the path's directory is gone
		t.Fatal(err)
	}
	if err := f.Reopen(); err == nil {
		t.Fatal("Reopen of a path whose directory is gone returned nil")
	}
	fmt.Fprintln(f, "two")
	if got, _ := os.ReadFile(filepath.Join(moved, "sluice.log")); string(got) != "one\ntwo\n" {
		t.Errorf("old file holds %q after a failed reopen, want both lines", got)
	}
	if err := os.Rename(moved, logs); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := f.Reopen(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("reopened log file: %v, mode %v, want the old file's 0600", err, st.Mode().Perm())
	}
}

// umask returns the process's umask.
func umask() os.FileMode {
	dir, _ := os.MkdirTemp("", "umask")
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "f")
	_ = os.WriteFile(p, nil, 0o777)
	st, _ := os.Stat(p)
	return 0o777 &^ st.Mode().Perm()
}

// TestSetPath moves a File between standard error, nowhere and files; a
// path that cannot be opened changes nothing.
func TestSetPath(t *testing.T) {
	var std bytes.Buffer
	f, err := Open(Stderr, &std)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "to stderr")
	if err := f.Reopen(); err != nil {
		t.Errorf("Reopen of stderr: %v", err)
	}
	path := filepath.Join(t.TempDir(), "a.log")
	if err := f.SetPath(path); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "to a file")
	if err := f.SetPath(filepath.Join(path, "not-a-dir", "b.log")); err == nil {
		t.Error("SetPath to a path under a file returned nil")
	}
	if f.Path() != path {
		t.Errorf("Path after a failed SetPath = %q, want %q", f.Path(), path)
	}
	fmt.Fprintln(f, "still to the file")
	if err := f.SetPath(Off); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "nowhere")
	if err := f.SetPath(Stderr); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "back to stderr")
	if got, want := std.String(), "to stderr\nback to stderr\n"; got != want {
		t.Errorf("stderr got %q, want %q", got, want)
	}
	if got, _ := os.ReadFile(path); string(got) != "to a file\nstill to the file\n" {
		t.Errorf("file got %q", got)
	}
}
