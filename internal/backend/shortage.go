package backend

import (
	"errors"
	"fmt"
	"syscall"
)

// A shortage is what a failed connect says when the failure is not the
// backend's: something this host or process ran short of. Both paths to a
// backend (Pool.Dial and Attempts) and the active health checks judge
// their errors by shortageOf, and a shortage is never held against the
// backend: marking it down would turn load into an outage.
type shortage int

const (
	// notShort: the failure is the backend's (refused, unreachable, timed
	// out, no such socket file); it counts against its health.
	notShort shortage = iota
	// shortTowards: short of something towards this backend only. Every
	// local port for its address is in use (EADDRNOTAVAIL: see
	// net.ipv4.ip_local_port_range), or its listen queue is full (EAGAIN
	// on a unix socket, still so at the end of the connect timeout; on
	// TCP, the kernel's own tables). The next backend may do better.
	shortTowards
	// shortOfSockets: this process cannot open a socket at all (EMFILE,
	// ENFILE, ENOBUFS, ENOMEM, or any OpenError): no other backend would
	// do better, so the connection gives up at once.
	shortOfSockets
)

// shortageOf says which shortage, if any, made a connect fail with err.
func shortageOf(err error) shortage {
	if oe := (*OpenError)(nil); errors.As(err, &oe) {
		return shortOfSockets
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return shortOfSockets
		}
	}
	if errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAGAIN) {
		return shortTowards
	}
	return notShort
}

// Blames reports whether a failed connect says something about the
// backend: whether it is no shortage of this host's, nor a source of the
// other address family (ErrSourceFamily: the client's or the config's).
func Blames(err error) bool {
	return shortageOf(err) == notShort && !errors.Is(err, ErrSourceFamily)
}

// starved ends the attempts when no socket could be opened (err, naming
// the backend, is a shortOfSockets): nothing is held against the backend,
// and no other is tried. The error returned wraps an OpenError.
func (a *Attempts) starved(err error) error {
	a.Abandon()
	if oe := (*OpenError)(nil); !errors.As(err, &oe) {
		err = &OpenError{err}
	}
	return fmt.Errorf("rule %q: %w", a.p.rule, err)
}
