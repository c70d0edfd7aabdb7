//go:build !linux

package relay

import (
	"errors"
	"syscall"
	"time"
)

// On systems other than Linux there is no splice and no parker: relays copy
// through pooled buffers and idle directions wait in the Go runtime's
// poller, each holding a goroutine.

// Parker is not available on this system; NewParker says so.
type Parker struct{ ids idCounter }

// idCounter stands in for the Linux parker's id source.
type idCounter struct{}

// Add is never called: no direction parks here.
func (idCounter) Add(uint64) uint64 { return 0 }

// NewParker reports that parking is not supported here.
func NewParker() (*Parker, error) {
	return nil, errors.New("relay: parking idle connections needs Linux (epoll)")
}

func (p *Parker) park(*direction) bool { return false }
func (p *Parker) take(uint64) waiter   { return nil }
func (p *Parker) Close()               {}

// waiter exists only for the Linux parker.
type waiter interface{}

// Await never watches a socket here: the caller waits in the Go runtime's
// poller instead.
func (p *Parker) Await(syscall.RawConn, time.Duration, func()) bool { return false }

func newPipe(int) *pipe             { return nil }
func (pp *pipe) close()             {}
func (d *direction) newRaw()        {}
func (d *direction) copyRaw() error { return d.copyBuffered() }

// rawState and chunk exist only for the Linux splice path.
type rawState struct{}

type chunk struct {
	p   *pipe
	buf *[]byte
}

// Engine is not available on this system; NewEngine says so.
type Engine struct{}

// NewEngine reports that event loops are not supported here.
func NewEngine(int) (*Engine, error) {
	return nil, errors.New("relay: event loops need Linux (epoll)")
}

// Close does nothing.
func (e *Engine) Close() {}

func (e *Engine) add(*Relay, [2]int, *connectState) (*engineConn, error) {
	return nil, errors.New("relay: no engine")
}

// armConnect does nothing: no relay waits for a connect here.
func (r *Relay) armConnect(*connectState) {}

// closeFD is never called: relays own no descriptors here.
func closeFD(int, bool) {}

// engineConn and loop exist only for the Linux engine.
type engineConn struct{ loop *loop }

type loop struct{}

func (l *loop) post(*engineConn)      {}
func (l *loop) report(*Relay, Result) {}

func engineFDs(client, backend syscall.RawConn) ([2]int, bool) { return [2]int{}, false }

// Loop exists only for the Linux engine: relays here have no loop.
type Loop struct{}
