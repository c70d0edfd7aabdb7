//go:build !linux

package udp

// sysBatch holds nothing where datagrams move one per call.
type sysBatch struct{}

// init does nothing.
func (s *sysBatch) init(*batch) {}

// newPlane returns the portable plane: the only one here.
func newPlane(m *member, _ bool) plane { return newGoPlane(m) }

// portsSys holds nothing where the portable plane serves every socket.
type portsSys struct{}

// init does nothing.
func (p *portsSys) init(int) {}

// loopDescriptors is what an event loop costs: nothing, there is none.
const loopDescriptors = 0
