package relay

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// polledEpoll is an epoll set that the Go runtime's poller watches (an epoll
// descriptor is readable when it has events), so the goroutine that serves
// it holds no OS thread while it waits: it calls raw.Read with a callback
// that takes the ready events without waiting (sysEpollWait).
type polledEpoll struct {
	fd   int
	file *os.File        // fd, registered with the Go runtime's poller; closing it ends raw.Read
	raw  syscall.RawConn // waits for fd to have events
}

// newPolledEpoll creates an epoll set watched by the Go runtime's poller;
// name labels its descriptor.
func newPolledEpoll(name string) (polledEpoll, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return polledEpoll{}, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return polledEpoll{}, err
	}
	f := os.NewFile(uintptr(fd), name)
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return polledEpoll{}, err
	}
	return polledEpoll{fd: fd, file: f, raw: raw}, nil
}

// keyedEvent is an epoll event for flags that carries key as its data.
func keyedEvent(flags uint32, key uint64) unix.EpollEvent {
	return unix.EpollEvent{Events: flags, Fd: int32(uint32(key)), Pad: int32(uint32(key >> 32))}
}

// eventKey returns the key that keyedEvent put in ev.
func eventKey(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// sysEpollWait returns the events ready now, without waiting. It is a raw
// call (see sys_linux.go).
func sysEpollWait(epfd int, events []unix.EpollEvent) int {
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
