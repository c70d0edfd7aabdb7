package relay

import "golang.org/x/sys/unix"

// newPipe creates a non-blocking pipe of about size bytes, or returns nil
// when the process is out of descriptors.
func newPipe(size int) *pipe {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil
	}
	got := size
	if size != 64<<10 {
		// Best effort: a smaller pipe than asked for still works.
		if n, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, size); err == nil {
			got = n
		} else if n, err := unix.FcntlInt(uintptr(fds[1]), unix.F_GETPIPE_SZ, 0); err == nil {
			got = n
		}
	}
	return &pipe{r: fds[0], w: fds[1], size: got}
}

// close closes both ends of the pipe.
func (pp *pipe) close() {
	unix.Close(pp.r)
	unix.Close(pp.w)
}
