package relay

import (
	"sync"
	"sync/atomic"
)

// bufferSize is the size of the buffers used where splice cannot be.
const bufferSize = 32 << 10

// maxIdlePipes bounds how many empty pipes the pool keeps open between
// transfers; more are closed when returned, so an idle process holds at most
// 2*maxIdlePipes pipe descriptors however many connections it relays. It is
// small also because the kernel charges a pipe's whole capacity to the
// user (fs.pipe-user-pages-soft), full or empty.
const maxIdlePipes = 16

// DefaultPipeSize is the capacity NewPools gives its pipes by default.
// Measured on loopback, 1 MiB pipes move bulk data about a fifth faster
// than the kernel's default 64 KiB, with fewer splice calls per byte; pages
// are only used while data is in flight.
const DefaultPipeSize = 1 << 20

// Pools lends pipes and buffers to relays for the moment data is in flight.
// One Pools should be shared by every relay of a process. It is safe for
// concurrent use.
type Pools struct {
	pipeSize int  // bytes moved per splice
	splice   bool // false: buffers only

	mu    sync.Mutex // guards the following fields
	pipes []*pipe    // idle, empty pipes

	buffers sync.Pool
	lent    atomic.Int64 // pipes and buffers out on loan, for tests and metrics
	made    atomic.Int64 // pipes created, for tests
}

// NewPools returns pools whose pipes hold pipeSize bytes (0 means
// DefaultPipeSize). A negative pipeSize disables splice: relays then copy
// through buffers. Where the kernel refuses the size (an unprivileged user
// over fs.pipe-user-pages-soft), pipes keep the size they get.
func NewPools(pipeSize int) *Pools {
	p := &Pools{pipeSize: pipeSize, splice: pipeSize >= 0}
	if p.pipeSize <= 0 {
		p.pipeSize = DefaultPipeSize
	}
	p.buffers.New = func() any {
		b := make([]byte, bufferSize)
		return &b
	}
	return p
}

// pipe is a kernel pipe used as the splice carrier.
type pipe struct {
	r, w int
	size int // capacity in bytes
}

// pipe returns an empty pipe, or nil when splice is off or no pipe can be
// created (e.g. out of descriptors); the caller then uses a buffer.
func (p *Pools) pipe() *pipe {
	if !p.splice {
		return nil
	}
	p.mu.Lock()
	if n := len(p.pipes); n > 0 {
		pp := p.pipes[n-1]
		p.pipes = p.pipes[:n-1]
		p.mu.Unlock()
		p.lent.Add(1)
		return pp
	}
	p.mu.Unlock()
	pp := newPipe(p.pipeSize)
	if pp != nil {
		p.lent.Add(1)
		p.made.Add(1)
	}
	return pp
}

// putPipe returns an empty pipe to the pool, or closes it when the pool is full.
func (p *Pools) putPipe(pp *pipe) {
	p.lent.Add(-1)
	p.mu.Lock()
	if len(p.pipes) < maxIdlePipes {
		p.pipes = append(p.pipes, pp)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	pp.close()
}

// buffer lends a buffer of bufferSize bytes.
func (p *Pools) buffer() *[]byte {
	p.lent.Add(1)
	return p.buffers.Get().(*[]byte)
}

// putBuffer returns a buffer.
func (p *Pools) putBuffer(b *[]byte) {
	p.lent.Add(-1)
	p.buffers.Put(b)
}

// release returns a chunk's carrier, which must hold no unwritten data.
func (p *Pools) release(c chunk) {
	if c.p != nil {
		p.putPipe(c.p)
	}
	if c.buf != nil {
		p.putBuffer(c.buf)
	}
}

// discard gives up a chunk whose data could not be written: a pipe that may
// still hold bytes is closed rather than reused.
func (p *Pools) discard(c chunk) {
	if c.p != nil {
		p.lent.Add(-1)
		c.p.close()
	}
	if c.buf != nil {
		p.putBuffer(c.buf)
	}
}

// Close closes the idle pipes. Relays may keep using the pools afterwards.
func (p *Pools) Close() {
	p.mu.Lock()
	pipes := p.pipes
	p.pipes = nil
	p.mu.Unlock()
	for _, pp := range pipes {
		pp.close()
	}
}
