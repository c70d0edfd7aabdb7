// Package epoll gives event loops epoll sets that the Go runtime's poller
// watches (an epoll descriptor is readable when it has events): the
// goroutine that serves a set holds no OS thread while it waits, and takes
// the ready events with an epoll_wait that never blocks, made raw so that
// the scheduler does no thread hand-off around it.
package epoll

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Set is an epoll set served by one goroutine at a time.
type Set struct {
	// FD is the epoll descriptor, for epoll_ctl.
	FD     int
	file   *os.File        // FD, registered with the Go runtime's poller; closing it ends Wait
	raw    syscall.RawConn // waits for FD to have events
	events []unix.EpollEvent
	n      int
	ready  func(fd uintptr) bool // s.take, made once so that Wait allocates nothing
}

// New creates an epoll set that returns up to size events at a time; name
// labels its descriptor.
func New(name string, size int) (*Set, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(fd), name)
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &Set{FD: fd, file: f, raw: raw, events: make([]unix.EpollEvent, size)}
	s.ready = s.take
	return s, nil
}

// Wait returns the events ready now, waiting in the Go runtime's poller
// while there are none. It fails once the set is closed. The slice is
// reused by the next Wait or Poll.
func (s *Set) Wait() ([]unix.EpollEvent, error) {
	if err := s.raw.Read(s.ready); err != nil {
		return nil, err
	}
	return s.events[:s.n], nil
}

// Poll returns the events ready now without waiting.
func (s *Set) Poll() []unix.EpollEvent {
	return s.events[:Ready(s.FD, s.events)]
}

// take is Wait's callback: it takes the ready events, and reports false
// (wait) when there are none.
func (s *Set) take(fd uintptr) bool {
	s.n = Ready(int(fd), s.events)
	return s.n > 0
}

// Close closes the set, ending a Wait in progress.
func (s *Set) Close() error { return s.file.Close() }

// Ready fills events with those of the epoll set epfd that are ready now,
// without waiting, and returns how many.
func Ready(epfd int, events []unix.EpollEvent) int {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(events))), uintptr(len(events)), 0, 0, 0)
		if e != unix.EINTR {
			if e != 0 {
				return 0
			}
			return int(r)
		}
	}
}

// Add adds fd to the set with ev, as a raw call (epoll_ctl never blocks).
func (s *Set) Add(fd int, ev *unix.EpollEvent) error {
	if _, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(s.FD), unix.EPOLL_CTL_ADD, uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0); e != 0 {
		return os.NewSyscallError("epoll_ctl", e)
	}
	return nil
}

// Keyed is an epoll event for flags that carries key as its data.
func Keyed(flags uint32, key uint64) unix.EpollEvent {
	return unix.EpollEvent{Events: flags, Fd: int32(uint32(key)), Pad: int32(uint32(key >> 32))}
}

// Key returns the key that Keyed put in ev.
func Key(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}
