//go:build !linux

package congestion

import (
	"fmt"
	"syscall"
)

// Set does nothing where sluice cannot choose the congestion control.
func Set(syscall.RawConn, string) error { return nil }

// Get returns "": the algorithm cannot be read here.
func Get(syscall.RawConn) (string, error) { return "", nil }

// SystemDefault returns "": the algorithm cannot be read here.
func SystemDefault() string { return "" }

// Allowed reports that no algorithm can be chosen here.
func Allowed(name string) error {
	return fmt.Errorf("congestion_control %q: only supported on Linux", name)
}

// Check rejects a named algorithm where sluice cannot set one.
func Check(c Choice) error {
	if name := c.Named(); name != "" {
		return fmt.Errorf("congestion_control %q: only supported on Linux", name)
	}
	return nil
}
