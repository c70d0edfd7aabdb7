//go:build !linux

package congestion

import (
	"fmt"
	"syscall"
)

// Set does nothing where sluice cannot choose the congestion control.
func Set(syscall.RawConn, string) error { return nil }

// Check rejects a named algorithm where sluice cannot set one.
func Check(c Choice) error {
	if name := c.Named(); name != "" {
		return fmt.Errorf("congestion_control %q: only supported on Linux", name)
	}
	return nil
}
