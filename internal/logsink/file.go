// Package logsink is where sluice's log lines go: standard error, nowhere,
// or a file that logrotate may move away. A File can be reopened at its path
// (SIGUSR1, after logrotate renamed it) or moved to another path (a
// reload), and a Queue hands lines to one goroutine that writes them, so
// that a slow, full or blocked destination never blocks the caller: a line
// that does not fit in the queue is dropped and counted.
package logsink

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// The paths that name no file.
const (
	Stderr = "stderr" // the process's standard error
	Off    = "off"    // nowhere: lines are discarded
)

// fileMode is the mode of a log file this package creates, unless the file
// it replaces had another (before the umask).
const fileMode os.FileMode = 0o640

// File is a log destination that can be reopened or moved while lines are
// written to it. Its Write is safe for concurrent use, and a Reopen or
// SetPath never waits for a write in progress: the new file takes the
// writes from the swap on, and the old one is closed once its last write
// has returned, so no line is lost or split between the two.
type File struct {
	std io.Writer // what Stderr names

	mu   sync.Mutex // serialises Reopen, SetPath and Close; guards path
	path string
	cur  atomic.Pointer[dest]
}

// dest is one opened destination of a File.
type dest struct {
	w io.Writer
	f *os.File // the file opened at a path; nil for Stderr and Off, which are never closed
}

// Open returns a File writing to path: Stderr (std, which must be safe for
// concurrent writes, as an *os.File is), Off, or a file opened for
// appending and created with mode 0640 when missing. Opening a FIFO that
// nobody has open for reading fails at once instead of waiting.
func Open(path string, std io.Writer) (*File, error) {
	f := &File{std: std, path: path}
	d, err := f.open(path, nil)
	if err != nil {
		return nil, err
	}
	f.cur.Store(d)
	return f, nil
}

// Path returns the path the File writes to.
func (f *File) Path() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.path
}

// Write writes p to the current destination. A write that finds its file
// closed by a concurrent Reopen or SetPath goes to the new one.
func (f *File) Write(p []byte) (int, error) {
	written := 0
	for {
		d := f.cur.Load()
		n, err := d.w.Write(p[written:])
		written += n
		if err == nil || !errors.Is(err, os.ErrClosed) || f.cur.Load() == d {
			return written, err
		}
	}
}

// Reopen opens the File's path again and swaps it in, as logrotate wants
// after it renamed the file: lines go to a new file at the path from now
// on. When the path cannot be opened the old file stays in use and the
// error is returned. Stderr and Off are not reopened.
func (f *File) Reopen() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.swapLocked(f.path)
}

// SetPath makes the File write to path instead (see Open for what path may
// be). When path cannot be opened nothing changes and the error is
// returned.
func (f *File) SetPath(path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if path == f.path {
		return nil
	}
	if err := f.swapLocked(path); err != nil {
		return err
	}
	f.path = path
	return nil
}

// swapLocked opens path and swaps it in for the current destination,
// closing the old one. Called with mu held.
func (f *File) swapLocked(path string) error {
	old := f.cur.Load()
	if old.f == nil && path == f.path {
		return nil // Stderr or Off: nothing to reopen
	}
	next, err := f.open(path, old.f)
	if err != nil {
		return err
	}
	f.cur.Store(next)
	return old.close()
}

// Close closes the File's file, if it has one; writes after it fail.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur.Load().close()
}

// open opens path as a destination. A file is created with the mode of
// like, the file it replaces, when there is one.
func (f *File) open(path string, like *os.File) (*dest, error) {
	switch path {
	case Stderr:
		return &dest{w: f.std}, nil
	case Off:
		return &dest{w: io.Discard}, nil
	}
	mode := fileMode
	if like != nil {
		if st, err := like.Stat(); err == nil {
			mode = st.Mode().Perm()
		}
	}
	// O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead of
	// blocking the open; a regular file ignores it.
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NONBLOCK, mode)
	if err != nil {
		return nil, err
	}
	return &dest{w: file, f: file}, nil
}

// close closes the destination's file, if it has one.
func (d *dest) close() error {
	if d.f == nil {
		return nil
	}
	return d.f.Close()
}
