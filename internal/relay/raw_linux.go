package relay

import (
	"golang.org/x/sys/unix"
)

// copyRaw drives both sockets directly. It waits for src to become readable
// holding nothing, and only then takes a pipe (splice: the bytes never enter
// user space) or, when no pipe can be had, a buffer from the pool. Both go
// back to the pool before the direction waits again.
//
// The callbacks given to the raw sockets are method values made once per
// direction (see newRaw), and the chunk in flight lives in the direction,
// so moving a chunk allocates nothing.
func (d *direction) copyRaw() error {
	c := &d.raw.c
	for {
		d.raw.size = max(d.r.pools.pipeSize, bufferSize)
		if d.throttle != nil {
			d.raw.size = d.throttle.allow(d.raw.size)
		}
		if err := d.srcRaw.Read(d.raw.read); err != nil {
			if d.spare != nil { // the read never started: give it back
				d.r.pools.putPipe(d.spare)
				d.spare = nil
			}
			if err = d.waited(err, true); err != nil {
				return err
			}
			continue
		}
		if c.err != nil {
			d.r.pools.release(*c)
			return c.err
		}
		if c.n == 0 {
			d.r.pools.release(*c)
			return nil // EOF
		}
		d.spend(c.n)
		if err := d.writeChunk(); err != nil {
			d.r.pools.discard(*c)
			return err
		}
		if c.p != nil {
			d.spare = c.p // empty now: the next read attempt uses it
		} else {
			d.r.pools.release(*c)
		}
		*c = chunk{}
	}
}

// chunk is data in flight: n bytes held in a pipe or in a buffer.
type chunk struct {
	p   *pipe
	buf *[]byte
	off int // bytes of buf already written
	n   int // bytes read; 0 means EOF
	err error
}

// rawState is what the raw-socket callbacks of one direction share with
// copyRaw: the chunk in flight and the callbacks themselves.
type rawState struct {
	c     chunk
	size  int   // most bytes to read now
	werr  error // the last write error
	read  func(fd uintptr) bool
	write func(fd uintptr) bool
}

// newRaw prepares the callbacks of a direction that drives raw sockets.
func (d *direction) newRaw() {
	d.raw = &rawState{}
	d.raw.read = d.readOnce
	d.raw.write = d.writeOnce
}

// readOnce is the read callback: it reads one chunk from src into d.raw.c,
// or reports false (wait for readability) holding nothing.
func (d *direction) readOnce(fd uintptr) bool {
	pools, c := d.r.pools, &d.raw.c
	for {
		*c = chunk{p: d.spare}
		d.spare = nil
		if c.p == nil {
			c.p = pools.pipe()
		}
		if c.p != nil {
			var n int64
			n, c.err = unix.Splice(int(fd), nil, c.p.w, nil, min(d.raw.size, c.p.size), spliceFlags)
			c.n = int(n)
		} else {
			c.buf = pools.buffer()
			c.n, c.err = unix.Read(int(fd), (*c.buf)[:min(d.raw.size, bufferSize)])
		}
		switch c.err {
		case unix.EINTR:
			pools.release(*c)
			continue
		case unix.EAGAIN:
			pools.release(*c)
			*c = chunk{}
			return false // wait for readability holding nothing
		}
		if c.n < 0 {
			c.n = 0
		}
		return true
	}
}

// writeChunk writes all of d.raw.c to dst, waiting for writability as needed.
func (d *direction) writeChunk() error {
	for d.raw.c.n > 0 {
		d.raw.werr = nil
		err := d.dstRaw.Write(d.raw.write)
		if werr := d.raw.werr; werr != nil && werr != unix.EAGAIN {
			return werr
		}
		if err != nil {
			if err = d.waited(err, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeOnce is the write callback: it writes as much of d.raw.c as dst
// takes, and reports false (wait for writability) when dst is full.
func (d *direction) writeOnce(fd uintptr) bool {
	c := &d.raw.c
	for c.n > 0 {
		var m int
		var werr error
		if c.p != nil {
			var m64 int64
			m64, werr = unix.Splice(c.p.r, nil, int(fd), nil, c.n, spliceFlags)
			m = int(m64)
		} else {
			m, werr = unix.Write(int(fd), (*c.buf)[c.off:c.off+c.n])
			c.off += max(m, 0)
		}
		d.raw.werr = werr
		switch {
		case werr == unix.EINTR:
			continue
		case werr == unix.EAGAIN:
			if !d.writeDeadline {
				d.setWriteDeadline() // about to wait: bound it
			}
			return false
		case werr != nil:
			return true
		}
		c.n -= m
		d.progress(m)
	}
	return true
}

// spliceFlags never block on the pipe and move pages where the kernel can.
const spliceFlags = unix.SPLICE_F_NONBLOCK | unix.SPLICE_F_MOVE
