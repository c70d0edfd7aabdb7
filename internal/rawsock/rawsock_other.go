//go:build !linux

package rawsock

// ResetClose is never called here: sluice holds sockets as bare
// descriptors only on Linux, and every connection elsewhere has a net.Conn.
func ResetClose(int) {}
