package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The UDP figures' backends, started afresh for each measurement:
//
//   - echo (echoBackend): every datagram is sent back to its sender.
//   - sink (sinkBackend): every datagram is counted and checked: it must
//     be as long as its header says and carry the pattern its header names
//     (see fillDatagram). A bad one fails the figure. It reads with
//     recvmmsg, sinkBatch datagrams at a time, so that the receiver is not
//     what limits a one-way figure.
//
// The echo runs udpServers goroutines on one socket, so that one can read
// while another answers.
const (
	udpServers = 2
	sinkBatch  = 64
)

// udpBufSize is the receive and send buffer of the bench's UDP sockets: room
// for bursts, so that what is lost is lost in the forwarder.
const udpBufSize = 4 << 20

// dgramHeader is the header of a sink datagram: sequence number (8 bytes),
// sender (4) and the datagram's total length (4), big-endian.
const dgramHeader = 16

// udpBackend is one UDP backend on a free loopback port.
type udpBackend struct {
	kind backendKind
	conn *net.UDPConn
	wg   sync.WaitGroup

	received atomic.Int64 // datagrams
	bytes    atomic.Int64
	bad      atomic.Int64

	mu       sync.Mutex // guards firstBad
	firstBad error
}

// startUDPBackend serves kind (echoBackend or sinkBackend) on loopback.
func startUDPBackend(kind backendKind) (*udpBackend, error) {
	if kind != echoBackend && kind != sinkBackend {
		return nil, fmt.Errorf("no UDP %v backend", kind)
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("udp %v backend: listen: %w", kind, err)
	}
	c.SetReadBuffer(udpBufSize)
	c.SetWriteBuffer(udpBufSize)
	b := &udpBackend{kind: kind, conn: c}
	if kind == sinkBackend {
		rc, err := c.SyscallConn()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("udp sink: %w", err)
		}
		b.wg.Go(func() { b.sink(rc) })
		return b, nil
	}
	for range udpServers {
		b.wg.Go(b.echo)
	}
	return b, nil
}

// addr returns the backend's address.
func (b *udpBackend) addr() string { return b.conn.LocalAddr().String() }

// close stops the backend.
func (b *udpBackend) close() {
	b.conn.Close()
	b.wg.Wait()
}

// failure returns what the sink found wrong, or nil.
func (b *udpBackend) failure() error {
	n := b.bad.Load()
	if n == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Errorf("udp sink: %d bad datagrams, first: %w", n, b.firstBad)
}

// echo answers datagrams until the socket is closed.
func (b *udpBackend) echo() {
	buf := make([]byte, 1<<16)
	for {
		n, from, err := b.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		b.received.Add(1)
		b.bytes.Add(int64(n))
		b.conn.WriteToUDPAddrPort(buf[:n], from)
	}
}

// sink counts and checks datagrams, a batch per recvmmsg, until the socket
// is closed. A datagram longer than a slot (64 KiB) is a bad one.
func (b *udpBackend) sink(rc syscall.RawConn) {
	bufs := make([][]byte, sinkBatch)
	iovs := make([]unix.Iovec, sinkBatch)
	hs := make([]unix.Mmsghdr, sinkBatch)
	for i := range hs {
		bufs[i] = make([]byte, 1<<16)
		iovs[i].Base = &bufs[i][0]
		iovs[i].SetLen(len(bufs[i]))
		hs[i].Hdr.Iov = &iovs[i]
		hs[i].Hdr.SetIovlen(1)
	}
	var n int
	var errno syscall.Errno
	recv := func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hs[0])), sinkBatch, unix.MSG_DONTWAIT, 0, 0)
		n, errno = int(r), e
		return e != unix.EAGAIN
	}
	for rc.Read(recv) == nil {
		if errno != 0 {
			continue
		}
		var bytes int64
		for i := range n {
			p := bufs[i][:hs[i].Len]
			bytes += int64(len(p))
			err := checkDatagram(p)
			if err == nil && hs[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
				err = errors.New("a datagram longer than 64 KiB")
			}
			if err != nil && b.bad.Add(1) == 1 {
				b.mu.Lock()
				b.firstBad = err
				b.mu.Unlock()
			}
		}
		b.received.Add(int64(n))
		b.bytes.Add(bytes)
	}
}

// ramp is the byte sequence 0, 1, 2, ... 255, 0, 1, ..., long enough that
// every datagram's pattern is one slice of it: byte i of a datagram whose
// header gives x is byte(x+i). Filling and checking are then one copy and
// one compare, so the bench's own senders and sink spend little CPU per
// datagram and leave it to the forwarder being measured.
var ramp = func() []byte {
	b := make([]byte, 1<<16+256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// fillDatagram writes sender's datagram seq into p (at least dgramHeader
// long): the header, then a pattern that depends on both.
func fillDatagram(p []byte, sender uint32, seq uint64) {
	binary.BigEndian.PutUint64(p[0:], seq)
	binary.BigEndian.PutUint32(p[8:], sender)
	binary.BigEndian.PutUint32(p[12:], uint32(len(p)))
	copy(p[dgramHeader:], datagramPattern(seq, sender, len(p)))
}

// datagramPattern is what follows the header of sender's datagram seq of
// length n.
func datagramPattern(seq uint64, sender uint32, n int) []byte {
	x := int(byte(seq) ^ byte(sender)*31)
	return ramp[x+dgramHeader : x+n]
}

// checkDatagram verifies a datagram that fillDatagram wrote.
func checkDatagram(p []byte) error {
	if len(p) < dgramHeader {
		return fmt.Errorf("a datagram of %d bytes, shorter than its header", len(p))
	}
	seq, sender := binary.BigEndian.Uint64(p[0:]), binary.BigEndian.Uint32(p[8:])
	if want := binary.BigEndian.Uint32(p[12:]); uint32(len(p)) != want {
		return fmt.Errorf("sender %d datagram %d: %d bytes, sent %d", sender, seq, len(p), want)
	}
	if want := datagramPattern(seq, sender, len(p)); !bytes.Equal(p[dgramHeader:], want) {
		i := dgramHeader
		for p[i] == want[i-dgramHeader] {
			i++
		}
		return fmt.Errorf("sender %d datagram %d: byte %d differs", sender, seq, i)
	}
	return nil
}

// waitQuiet waits until the backend has received nothing new for quiet, or
// limit has passed, so that datagrams still in a forwarder's buffers are
// counted.
func (b *udpBackend) waitQuiet(quiet, limit time.Duration) {
	tick := time.NewTicker(quiet)
	defer tick.Stop()
	deadline := time.Now().Add(limit)
	last := b.received.Load()
	for range tick.C {
		now := b.received.Load()
		if now == last || time.Now().After(deadline) {
			return
		}
		last = now
	}
}
