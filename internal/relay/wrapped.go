package relay

import (
	"time"
)

// A wrapped connection is a net.Conn that is not a plain socket, such as
// the *tls.Conn of a connection sluice terminates TLS for, or speaks TLS
// to its backend over. The relay copies from and to it through buffers,
// on a goroutine per direction, with three differences from a plain
// socket:
//
//   - it never sets a deadline on it: a *tls.Conn whose write timed out
//     is broken for good. The relay's idle timer watches the idle limit
//     instead, and stops the relay (closing both sides) when it passes;
//   - a direction from a plain socket to a wrapped one parks when idle,
//     as a direction between plain sockets does: it waits for its src;
//   - a direction from a wrapped src waits for its first byte without a
//     pool buffer (readWrapped), so that an idle terminated connection
//     holds none.

// readWrapped reads from the direction's wrapped src: it waits for one
// byte in the direction's own slot, then takes a buffer from the pool and
// reads there whatever else src has at hand without waiting (a TLS
// record's rest, already decrypted). It returns the buffer, which the
// caller gives back, and how many bytes it holds.
func (d *direction) readWrapped() (*[]byte, int, error) {
	n, err := d.src.Read(d.first[:])
	buf := d.r.pools.buffer()
	if n == 0 {
		return buf, 0, err
	}
	(*buf)[0] = d.first[0]
	if err != nil {
		return buf, 1, err
	}
	// A deadline in the past: src returns what it holds already, or a
	// timeout, which is not sticky for reads (crypto/tls retries them).
	d.src.SetReadDeadline(time.Unix(1, 0))
	m, err := d.src.Read((*buf)[1:])
	d.src.SetReadDeadline(time.Time{})
	if err != nil && isDeadline(err) {
		err = nil
	}
	return buf, 1 + m, err
}
