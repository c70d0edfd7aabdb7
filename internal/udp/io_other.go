//go:build !linux

package udp

// sysBatch holds nothing where datagrams move one per call.
type sysBatch struct{}

// init does nothing.
func (s *sysBatch) init(*batch) {}

// newPlane returns the portable plane: the only one here.
func newPlane(m *member, _ bool) plane { return newGoPlane(m) }
