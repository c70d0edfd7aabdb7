package relay

// Methods for tests only, on Linux.

// Relays returns how many relays the engine's loops are carrying.
func (e *Engine) Relays() int {
	n := 0
	for _, l := range e.loops {
		l.mu.Lock()
		n += len(l.conns)
		l.mu.Unlock()
	}
	return n
}

// Parked returns how many directions and awaited sockets are parked.
func (p *Parker) Parked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.parked)
}
