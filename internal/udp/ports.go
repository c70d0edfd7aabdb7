package udp

// Ports is what the services of a rule's ports share when the rule listens
// on a range of ports (a Service per port): the rule's event loops on
// Linux, workers of them, which read the ports' sockets (one each) and
// their sessions' sockets, and one sweeper. So a port of a range costs its
// socket and no goroutine of its own, however many ports and cores there
// are. Make it with NewPorts; give it to each port's Service in Deps.
type Ports struct {
	sweeper *sweeper
	sys     portsSys
}

// NewPorts returns what the ports of a rule with the given workers share.
func NewPorts(workers int) *Ports {
	p := &Ports{sweeper: newSweeper()}
	p.sys.init(GroupSize(workers))
	return p
}

// sweeperOr returns the sweeper p shares, or own when p is nil.
func (p *Ports) sweeperOr(own *sweeper) *sweeper {
	if p == nil {
		return own
	}
	return p.sweeper
}

// RangeDescriptors returns how many file descriptors a rule listening on
// ports ports of a range holds for UDP while served, without the sessions
// (one backend socket each): a socket per port, and the rule's event
// loops, shared by its ports.
func RangeDescriptors(ports, workers int) int {
	return ports + GroupSize(workers)*loopDescriptors
}
