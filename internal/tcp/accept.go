// Package tcp runs a rule's TCP side: the accept loop and the path of one
// connection through admission, dial, relay and the access log.
package tcp

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"

	"sluice/internal/backoff"
)

// acceptLoop accepts on ln until it is closed, passing each connection to
// handle.
func acceptLoop(ln net.Listener, handle func(net.Conn), logger *slog.Logger) error {
	return acceptEach(ln, func() error {
		c, err := ln.Accept()
		if err == nil {
			handle(c)
		}
		return err
	}, logger)
}

// acceptEach calls accept, which takes one or more connections from ln, for
// as long as ln is open. Running out of descriptors or memory never ends
// the loop: it backs off from 5 ms doubling to 1 s and says so once per
// episode. It returns nil when ln is closed and the error otherwise.
func acceptEach(ln net.Listener, accept func() error, logger *slog.Logger) error {
	var delay backoff.Delay
	for {
		err := accept()
		if err == nil {
			if delay.Reset() {
				logger.Info("accepting again", "listen", ln.Addr().String())
			}
			continue
		}
		if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
			return nil
		}
		if errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EINTR) {
			continue // the client gave up before we accepted it
		}
		if !retryable(err) {
			return err
		}
		wait, first := delay.Next()
		if first {
			logger.Warn("accept paused: "+describe(err), "listen", ln.Addr().String(), "error", err.Error())
		}
		time.Sleep(wait)
	}
}

// retryable reports whether an accept error is a shortage that goes away.
func retryable(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EAGAIN, syscall.EPERM, syscall.EPROTO} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// describe says in words what an accept shortage means for an operator.
func describe(err error) string {
	switch {
	case errors.Is(err, syscall.EMFILE):
		return "file descriptor limit of the process reached (raise LimitNOFILE / ulimit -n); backing off"
	case errors.Is(err, syscall.ENFILE):
		return "system-wide file descriptor limit reached (fs.file-max); backing off"
	case errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.ENOMEM):
		return "out of kernel memory for sockets; backing off"
	default:
		return "accept failing; backing off"
	}
}
