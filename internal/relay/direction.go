package relay

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"sluice/internal/access"
)

// errIdle ends a direction whose relay passed its idle limit; errPark says
// a direction should park (see Parker).
var (
	errIdle = errors.New("relay: idle timeout")
	errPark = errors.New("relay: park")
)

// direction copies one way, src → dst.
type direction struct {
	r        *Relay
	src, dst net.Conn
	srcRaw   syscall.RawConn // nil when src is not a plain socket
	dstRaw   syscall.RawConn // nil when dst is not a plain socket
	counter  *atomic.Int64   // live count, may be nil
	total    *atomic.Int64   // rule-wide count, may be nil
	throttle *throttle       // nil: no bandwidth limit
	other    *direction
	parkID   uint64 // key in the parker's set; 0 without a parker
	parks    bool   // may park when idle
	// registered is whether src is in the parker's epoll set; only the
	// goroutine that owns the direction touches it.
	registered bool
	// writeDeadline is whether dst has a write deadline; it is set only
	// once a write has had to wait, which most connections never do.
	writeDeadline bool
	// seen is the relay's activity count when this direction last looked.
	seen uint64
	// spare is an empty pipe kept from the last chunk for the next read
	// attempt; it goes back to the pool before the direction waits.
	spare *pipe
	raw   *rawState // for raw sockets: the chunk in flight and callbacks
	// bulk is whether the last read brought more than smallChunk bytes:
	// the next read splices through a pipe instead of copying through a
	// buffer.
	bulk bool
	// first is where a direction whose src is wrapped waits for its
	// first byte, holding no buffer (see readWrapped).
	first [1]byte
	n     int64 // bytes written to dst
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
	if name == "up" {
		d.total = r.opts.RuleUp
	} else {
		d.total = r.opts.RuleDown
	}
	d.srcRaw = rawConn(src)
	d.dstRaw = rawConn(dst)
	d.throttle = newThrottle(r.opts.Bandwidth)
	return d
}

// prepare readies a direction to run on a goroutine of its own.
func (d *direction) prepare() {
	if d.srcRaw != nil && d.dstRaw != nil {
		d.newRaw()
	}
	if p := d.r.opts.Parker; p != nil && d.srcRaw != nil {
		d.parkID = p.ids.Add(1)
		d.parks = true
	}
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
// any error. A direction that parks returns early; the parker resumes it.
func (d *direction) run() {
	for {
		var err error
		if d.raw != nil {
			err = d.copyRaw()
		} else {
			err = d.copyBuffered()
		}
		if err == errPark {
			d.r.armIdleTimer()
			if d.r.opts.Parker.park(d) {
				return // d now belongs to the parker or to Stop
			}
			d.parks = false // cannot be watched: wait here from now on
			d.setReadDeadline()
			continue
		}
		d.end(err)
		return
	}
}

// resume carries on a direction the parker found readable.
func (d *direction) resume() {
	d.setReadDeadline()
	d.run()
}

// end acts on how the copy ended and counts the direction out.
func (d *direction) end(err error) {
	switch {
	case err == nil:
		d.finish()
	case errors.Is(err, errIdle):
		d.r.Stop(access.IdleTimeout)
	case isClosed(err):
		// Stopped, or the other direction aborted: nothing more to do.
	default:
		d.r.abort(err)
	}
	d.r.exited()
}

// finish passes src's FIN on to dst and puts the other direction under the
// half-close idle limit.
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
	d.r.touch() // the FIN passed on: the other side may answer
	d.r.settle()
	d.r.halfClosed.Store(true)
	if d.r.idleLimit() > 0 {
		deadline := d.r.deadline(time.Now())
		if d.other.srcRaw != nil {
			d.other.src.SetReadDeadline(deadline)
		}
		if d.other.dstRaw != nil {
			d.other.dst.SetWriteDeadline(deadline)
		}
		d.r.armIdleTimer()
	}
}

// setReadDeadline bounds the next wait for data on src (see Relay.deadline).
// A wrapped src (see wrapped.go) gets none: the idle timer watches it.
func (d *direction) setReadDeadline() {
	if d.srcRaw == nil {
		d.r.armIdleTimer()
		return
	}
	d.src.SetReadDeadline(d.r.deadline(time.Now()))
}

// setWriteDeadline bounds the next wait for room on dst. A wrapped dst
// gets none: the idle timer watches it.
func (d *direction) setWriteDeadline() {
	d.writeDeadline = true
	if d.dstRaw == nil {
		d.r.armIdleTimer()
		return
	}
	d.dst.SetWriteDeadline(d.r.deadline(time.Now()))
}

// waited handles an error from a wait on src (reading) or dst. It returns
// nil when the wait should be retried with a new deadline (one fired but the
// relay was not idle for its whole limit, e.g. because the other direction
// moved bytes), errIdle when the relay is idle, errPark when this direction
// should park (it saw no activity for a whole window), and err when it is
// not a deadline at all.
func (d *direction) waited(err error, reading bool) error {
	if !isDeadline(err) {
		return err
	}
	before := d.seen
	d.seen = d.r.activity.Load()
	d.r.settle()
	now := time.Now()
	if deadline := d.r.idleDeadline(); !deadline.IsZero() && !now.Before(deadline) {
		return errIdle
	}
	if !reading {
		d.setWriteDeadline()
		return nil
	}
	if d.parks && d.seen == before {
		return errPark
	}
	d.setReadDeadline()
	return nil
}

// allow returns how many bytes the direction may read now, at most limit,
// waiting for the bandwidth limit if there is one.
func (d *direction) allow(limit int) int {
	if d.throttle == nil {
		return limit
	}
	return d.throttle.allow(limit)
}

// spend charges n bytes read to the bandwidth limit.
func (d *direction) spend(n int) {
	if d.throttle != nil {
		d.throttle.spend(n)
	}
}

// progress counts n bytes written to dst.
func (d *direction) progress(n int) {
	d.n += int64(n)
	if d.counter != nil {
		d.counter.Add(int64(n))
	}
	if d.total != nil {
		d.total.Add(int64(n))
	}
	d.r.touch()
}

// copyBuffered is the portable path for connections relay cannot drive
// directly (wrapped or rate-limited ones). It holds a buffer while it
// waits, but for a wrapped src (see readWrapped).
func (d *direction) copyBuffered() error {
	pools := d.r.pools
	d.setWriteDeadline() // plain writes cannot set it lazily
	for {
		d.r.settle() // the read (or the bandwidth limit) may wait
		var buf *[]byte
		var n int
		var err error
		if d.srcRaw == nil && d.throttle == nil {
			buf, n, err = d.readWrapped()
		} else {
			buf = pools.buffer()
			n, err = d.src.Read((*buf)[:d.allow(len(*buf))])
		}
		if n > 0 {
			d.spend(n)
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
			if err = d.waited(err, true); err != nil {
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
			if err = d.waited(err, false); err != nil {
				return err
			}
		}
	}
	return nil
}
