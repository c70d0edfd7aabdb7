package relay

import (
	"errors"
	"time"
)

// Dialer is the backend side of a relay whose backend socket is still
// connecting (see NewConnecting). The engine's loop waits for each connect
// and tells the Dialer how it went; the Dialer decides what comes next.
// That is all the relay knows of backends.
//
// Its methods run on the loop that serves other relays: they must not
// block.
type Dialer interface {
	// Connected is told that the connect of the backend socket fd has
	// succeeded. None of the client's bytes has gone to fd yet, so it may
	// write what the backend must read first (a prelude, such as a PROXY
	// header). An error makes the connect a failed one after all: the
	// engine then calls Failed with it, as for any failed connect.
	Connected(fd int) error
	// Failed is told that the connect of the current backend socket has
	// failed with err: the socket's error, an i/o timeout
	// (os.ErrDeadlineExceeded) or Connected's error. The relay closes that
	// socket. Failed returns the next backend socket to wait for, its
	// connect started, or the error that ends the relay with
	// access.ConnectFailed.
	Failed(err error) (next int, fail error)
}

// Connecting describes the backend side of a relay that the engine sets up
// itself (see NewConnecting): a socket whose non-blocking connect is in
// progress, how long to wait for it, and who decides what happens next.
type Connecting struct {
	// FD is the backend socket: non-blocking, its connect started.
	FD int
	// Timeout bounds the wait for one connect. Zero means no bound.
	Timeout time.Duration
	// Dialer is told how each connect went.
	Dialer Dialer
	// First, if not empty, is what the backend reads once connected,
	// after what Dialer.Connected wrote and before any of the client's
	// bytes: bytes the client sent that its socket no longer holds (a
	// route step's). They go as the first chunk up, written as any chunk
	// is (waiting for room when the backend is slow to take them),
	// counted once as bytes up, and only to the socket that connected:
	// after a failed connect they wait for the next. The relay owns the
	// slice from NewConnecting on and writes it without copying it.
	First []byte
}

// errNoEngine ends a relay made by NewConnecting without an engine.
var errNoEngine = errors.New("relay: no engine to carry the connection")

// connectState is what a relay waiting for its backend's connect keeps.
// Only the relay's loop touches it once the relay is on one.
type connectState struct {
	Timeout time.Duration
	Dialer  Dialer
	first   *[]byte     // Connecting.First; nil when empty
	timer   *time.Timer // the current socket's connect timeout
	gen     uint32      // counts the sockets tried; a timeout names the one it was for
}

// NewConnecting prepares a relay between the client socket clientFD and a
// backend socket that is still connecting (c), both plain non-blocking
// sockets that the relay owns from now on: it closes them. Start puts it
// on opts.Engine, which waits for the connect's outcome and tells
// c.Dialer (see Dialer); once connected it relays as any other. Bytes the
// client sends meanwhile wait in its socket.
//
// Such a relay runs only on an engine and has no bandwidth limit. When the
// engine cannot take it (none given, closed, or out of resources), Start
// ends it at once with access.ConnectFailed.
func NewConnecting(clientFD int, c Connecting, opts Options) *Relay {
	opts.Bandwidth = 0
	r := newRelay(nil, nil, opts)
	r.owned, r.onEngine = true, true
	r.fds = [2]int{clientFD, c.FD}
	r.connecting = &connectState{Timeout: c.Timeout, Dialer: c.Dialer}
	if len(c.First) > 0 {
		first := c.First // on the heap only when given
		r.connecting.first = &first
	}
	return r
}
