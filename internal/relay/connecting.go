package relay

import (
	"errors"
	"time"
)

// Connecting describes the backend side of a relay that the engine sets up
// itself (see NewConnecting): a socket whose non-blocking connect is in
// progress, how long to wait for it, and who decides what happens next.
type Connecting struct {
	// FD is the backend socket: non-blocking, its connect started.
	FD int
	// Timeout bounds the wait for one connect. Zero means no bound.
	Timeout time.Duration
	// Outcome is called on the engine's loop once the connect of fd has
	// finished: err is nil when it succeeded, the socket's error when it
	// failed, or an i/o timeout. On success its answer is ignored unless
	// it returns an error, which ends the relay. On failure it returns the
	// next backend socket to wait for (connect started; the relay closes
	// fd), or an error that ends the relay with access.ConnectFailed.
	//
	// It must not block: it runs on the loop that serves other relays.
	Outcome func(fd int, err error) (next int, fail error)
}

// errNoEngine ends a relay made by NewConnecting without an engine.
var errNoEngine = errors.New("relay: no engine to carry the connection")

// connectState is what a relay waiting for its backend's connect keeps.
// Only the relay's loop touches it once the relay is on one.
type connectState struct {
	Connecting
	timer *time.Timer // the current socket's connect timeout
	gen   uint32      // counts the sockets tried; a timeout names the one it was for
}

// NewConnecting prepares a relay between the client socket clientFD and a
// backend socket that is still connecting (c), both plain non-blocking
// sockets that the relay owns from now on: it closes them. Start puts it
// on opts.Engine, which waits for the connect's outcome and asks
// c.Outcome what to do; once connected it relays as any other. Bytes the
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
	r.connecting = &connectState{Connecting: c}
	return r
}
