package relay

import (
	"net"

	"golang.org/x/sys/unix"
)

// copyRaw drives both sockets directly. It waits for src to become readable
// holding nothing, and only then takes a buffer or, for bulk data, a pipe
// (splice: the bytes never enter user space) from the pool; readOnce moves
// chunks while both sockets are ready. Carriers go back to the pool before
// the direction waits again.
//
// The callbacks given to the raw sockets are method values made once per
// direction (see newRaw), and the chunk in flight lives in the direction,
// so moving a chunk allocates nothing.
func (d *direction) copyRaw() error {
	c := &d.raw.c
	for {
		d.r.settle() // the bandwidth limit, or the read, may wait
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
	flush func(fd uintptr) bool
}

// newRaw prepares the callbacks of a direction that drives raw sockets.
func (d *direction) newRaw() {
	d.raw = &rawState{}
	d.raw.read = d.readOnce
	d.raw.write = d.writeOnce
	d.raw.flush = d.flushOnce
}

// readOnce is the read callback: it reads a chunk from src into d.raw.c
// and, unless the direction is throttled, writes it to dst at once, over
// and over while both sockets are ready. It reports false (wait for
// readability) holding nothing, and true when copyRaw must act: at EOF, on
// an error, or with bytes left over that dst would not take yet.
//
// Small chunks go through a buffer, bulk ones through a pipe: a read of
// more than smallChunk bytes makes the next ones splice, a smaller one goes
// back to buffers. For a few bytes, a copy costs the kernel less than
// lending pages to a pipe and back. A short read does not end the loop:
// only EAGAIN says the socket is empty, because the poller's readiness
// tells nothing of a FIN that came with the bytes just read.
func (d *direction) readOnce(fd uintptr) bool {
	pools, c := d.r.pools, &d.raw.c
	for {
		*c = chunk{}
		if d.r.ending.Load() {
			// Stopped: the sockets are closing, but their descriptors
			// stay open while this callback runs, and a busy pair might
			// keep it running.
			if d.spare != nil {
				pools.putPipe(d.spare)
				d.spare = nil
			}
			c.err = net.ErrClosed
			return true
		}
		if d.bulk {
			c.p = d.spare
			d.spare = nil
			if c.p == nil {
				c.p = pools.pipe()
			}
		} else if d.spare != nil {
			pools.putPipe(d.spare)
			d.spare = nil
		}
		if c.p == nil {
			c.buf = pools.buffer()
		}
		c.fill(int(fd), d.raw.size)
		switch c.err {
		case unix.EINTR:
			pools.release(*c)
			continue
		case unix.EAGAIN:
			pools.release(*c)
			*c = chunk{}
			d.r.settle()
			return false // wait for readability holding nothing
		}
		if c.err != nil || c.n <= 0 || d.throttle != nil {
			c.n = max(c.n, 0)
			return true
		}
		d.bulk = c.n > smallChunk
		if !d.flush() {
			return true // dst is full (or failed): copyRaw waits on it
		}
		if c.p != nil {
			d.spare = c.p // empty now: the next read may use it
		} else {
			pools.release(*c)
		}
		*c = chunk{}
	}
}

// flush writes what it can of d.raw.c to dst without waiting, and reports
// whether all of it went. It runs inside readOnce: a second socket's write
// lock taken under the first's read lock, which the other direction takes
// the other way round (its own read lock, this one's write lock), so the
// two never wait on each other.
func (d *direction) flush() bool {
	d.raw.werr = nil
	if err := d.dstRaw.Write(d.raw.flush); err != nil {
		return false
	}
	return d.raw.c.n == 0
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
	if d.writeAvailable(fd) {
		return true
	}
	d.r.settle()
	if !d.writeDeadline {
		d.setWriteDeadline() // about to wait: bound it
	}
	return false
}

// flushOnce is the write callback of flush: as writeOnce, but it never
// waits.
func (d *direction) flushOnce(fd uintptr) bool {
	d.writeAvailable(fd)
	return true
}

// writeAvailable writes as much of d.raw.c as dst takes now. It reports
// false when dst is full (EAGAIN) and true when the chunk is all written or
// the write failed (d.raw.werr).
func (d *direction) writeAvailable(fd uintptr) bool {
	d.raw.werr = d.send(int(fd), &d.raw.c)
	return d.raw.werr != unix.EAGAIN
}

// fill reads from fd into c's carrier, which the caller has set: a splice
// of up to size bytes into c.p, or a read into c.buf. It sets c.n and c.err
// and returns how many bytes it asked for. The descriptors are
// non-blocking, so the calls are raw (see sys_linux.go).
func (c *chunk) fill(fd, size int) (want int) {
	if c.p != nil {
		want = min(size, c.p.size)
		c.n, c.err = sysSplice(fd, c.p.w, want)
	} else {
		want = min(size, bufferSize)
		c.n, c.err = sysRead(fd, (*c.buf)[:want])
	}
	return want
}

// send writes c to fd until all of it went (nil), fd is full (EAGAIN) or
// the write failed, counting what goes as d's progress.
func (d *direction) send(fd int, c *chunk) error {
	for c.n > 0 {
		var m int
		var err error
		if c.p != nil {
			m, err = sysSplice(c.p.r, fd, c.n)
		} else {
			m, err = sysWrite(fd, (*c.buf)[c.off:c.off+c.n])
		}
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		}
		c.off += m
		c.n -= m
		d.progress(m)
	}
	return nil
}

// smallChunk is the most bytes a read may bring for the next read to copy
// through a buffer rather than splice.
const smallChunk = 4 << 10

// spliceFlags never block on the pipe and move pages where the kernel can.
const spliceFlags = unix.SPLICE_F_NONBLOCK | unix.SPLICE_F_MOVE
