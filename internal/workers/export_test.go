package workers

// Methods for tests only.

// Idle returns how many workers are waiting for a task.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}
