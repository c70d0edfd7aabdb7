//go:build !linux

package rawsock

import "errors"

// ResetClose is never called here: sluice holds sockets as bare
// descriptors only on Linux, and every connection elsewhere has a net.Conn.
func ResetClose(int) {}

// SetOptions sets nothing here: a fixed local address is bound by the net
// package's dialer, and transparency and marks need Linux.
func (o Origin) SetOptions(int) error {
	if o.Transparent || o.Mark != 0 {
		return errors.New("transparent sockets and marks need Linux")
	}
	return nil
}

// Probe reports that transparency and marks need Linux.
func Probe(o Origin) error { return o.SetOptions(-1) }
