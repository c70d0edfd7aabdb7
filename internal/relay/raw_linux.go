package relay

import (
	"golang.org/x/sys/unix"
)

// copyRaw drives both sockets directly. It waits for src to become readable
// holding nothing, and only then takes a pipe (splice: the bytes never enter
// user space) or, when no pipe can be had, a buffer from the pool. Both go
// back to the pool as soon as the chunk has been written to dst.
func (d *direction) copyRaw() error {
	for {
		c, err := d.readChunk()
		if err != nil {
			if err = d.waited(err, true); err != nil {
				return err
			}
			continue
		}
		if c.err != nil {
			d.r.pools.release(c)
			return c.err
		}
		if c.n == 0 {
			d.r.pools.release(c)
			return nil // EOF
		}
		d.spend(c.n)
		d.r.touch()
		if err := d.writeChunk(&c); err != nil {
			d.r.pools.discard(c)
			return err
		}
		d.r.pools.release(c)
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

// readChunk waits until src is readable and reads one chunk from it. A
// returned error is from the wait (deadline or close); a read error is in
// chunk.err.
func (d *direction) readChunk() (chunk, error) {
	var c chunk
	pools := d.r.pools
	size := d.allow(max(pools.pipeSize, bufferSize))
	err := d.srcRaw.Read(func(fd uintptr) bool {
		for {
			c = chunk{}
			if c.p = pools.pipe(); c.p != nil {
				var n int64
				n, c.err = unix.Splice(int(fd), nil, c.p.w, nil, min(size, c.p.size), spliceFlags)
				c.n = int(n)
			} else {
				c.buf = pools.buffer()
				c.n, c.err = unix.Read(int(fd), (*c.buf)[:min(size, bufferSize)])
			}
			switch c.err {
			case unix.EINTR:
				pools.release(c)
				continue
			case unix.EAGAIN:
				pools.release(c)
				return false // wait for readability holding nothing
			}
			if c.n < 0 {
				c.n = 0
			}
			return true
		}
	})
	return c, err
}

// writeChunk writes all of c to dst, waiting for writability as needed.
func (d *direction) writeChunk(c *chunk) error {
	for c.n > 0 {
		var werr error
		err := d.dstRaw.Write(func(fd uintptr) bool {
			for c.n > 0 {
				var m int
				if c.p != nil {
					var m64 int64
					m64, werr = unix.Splice(c.p.r, nil, int(fd), nil, c.n, spliceFlags)
					m = int(m64)
				} else {
					m, werr = unix.Write(int(fd), (*c.buf)[c.off:c.off+c.n])
					c.off += max(m, 0)
				}
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
		})
		if werr != nil && werr != unix.EAGAIN {
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

// spliceFlags never block on the pipe and move pages where the kernel can.
const spliceFlags = unix.SPLICE_F_NONBLOCK | unix.SPLICE_F_MOVE
