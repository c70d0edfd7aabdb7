package relay

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// errIdle ends a direction whose relay passed its idle limit.
var errIdle = errors.New("relay: idle timeout")

// direction copies one way, src → dst.
type direction struct {
	r        *Relay
	src, dst net.Conn
	srcRaw   syscall.RawConn // nil when src is not a plain socket
	dstRaw   syscall.RawConn // nil when dst is not a plain socket
	counter  *atomic.Int64   // live count, may be nil
	other    *direction
	n        int64 // bytes written to dst
}

func newDirection(r *Relay, src, dst net.Conn, name string) *direction {
	d := &direction{r: r, src: src, dst: dst}
	if c := r.opts.Counters; c != nil {
		if name == "up" {
			d.counter = &c.Up
		} else {
			d.counter = &c.Down
		}
	}
	d.srcRaw = rawConn(src)
	d.dstRaw = rawConn(dst)
	return d
}

// rawConn returns the raw socket of c when c is a plain TCP or unix stream
// socket that relay may drive directly, or nil.
func rawConn(c net.Conn) syscall.RawConn {
	var sc syscall.Conn
	switch c := c.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// run copies until src ends, then passes the FIN on, or resets the relay on
// any error.
func (d *direction) run() {
	var err error
	if d.srcRaw != nil && d.dstRaw != nil {
		err = d.copyRaw()
	} else {
		err = d.copyBuffered()
	}
	switch {
	case err == nil:
		d.finish()
	case errors.Is(err, errIdle):
		d.r.Stop(EndIdleTimeout)
	case isClosed(err):
		// Stopped, or the other direction aborted: nothing more to do.
	default:
		d.r.abort(err)
	}
}

// finish passes src's FIN on to dst and tightens the other direction's idle
// limit to the half-close limit.
func (d *direction) finish() {
	cw, ok := d.dst.(interface{ CloseWrite() error })
	if !ok {
		d.r.abort(errors.New("relay: connection cannot half-close"))
		return
	}
	if err := cw.CloseWrite(); err != nil {
		if !isClosed(err) {
			d.r.abort(err)
		}
		return
	}
	d.r.halfClosed.Store(true)
	if d.r.idleLimit() > 0 {
		d.other.setDeadlines(d.r.idleDeadline())
	}
}

// setDeadlines bounds this direction's waits for reading src and writing dst.
func (d *direction) setDeadlines(t time.Time) {
	d.src.SetReadDeadline(t)
	d.dst.SetWriteDeadline(t)
}

// waited handles an error from a wait on src or dst. It returns nil when the
// wait should be retried (a deadline fired but the relay was not idle for its
// whole limit, e.g. because the other direction moved bytes), errIdle when the
// relay is idle, and err otherwise.
func (d *direction) waited(err error) error {
	if !isDeadline(err) {
		return err
	}
	deadline := d.r.idleDeadline()
	if deadline.IsZero() {
		d.setDeadlines(time.Time{})
		return nil
	}
	if !time.Now().Before(deadline) {
		return errIdle
	}
	half := d.r.halfClosed.Load()
	d.setDeadlines(deadline)
	if !half && d.r.halfClosed.Load() {
		// The other direction finished while we computed the deadline;
		// take the shorter half-close limit into account.
		d.setDeadlines(d.r.idleDeadline())
	}
	return nil
}

// progress counts n bytes written to dst.
func (d *direction) progress(n int) {
	d.n += int64(n)
	if d.counter != nil {
		d.counter.Add(int64(n))
	}
	d.r.touch()
}

// copyBuffered is the portable path for connections relay cannot drive
// directly. It holds a buffer only while a read or write is in progress.
func (d *direction) copyBuffered() error {
	pools := d.r.pools
	for {
		buf := pools.buffer()
		n, err := d.src.Read(*buf)
		if n > 0 {
			d.r.touch()
			if werr := d.writeAll((*buf)[:n]); werr != nil {
				pools.putBuffer(buf)
				return werr
			}
		}
		pools.putBuffer(buf)
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			if err = d.waited(err); err != nil {
				return err
			}
		}
	}
}

// writeAll writes b to dst, waiting out deadlines that fire while the relay
// is not idle.
func (d *direction) writeAll(b []byte) error {
	for len(b) > 0 {
		n, err := d.dst.Write(b)
		if n > 0 {
			d.progress(n)
			b = b[n:]
		}
		if err != nil {
			if err = d.waited(err); err != nil {
				return err
			}
		}
	}
	return nil
}
