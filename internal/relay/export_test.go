package relay

// Methods for tests only.

// Run is Start that waits for the result.
func (r *Relay) Run() Result {
	ch := make(chan Result, 1)
	r.Start(func(res Result) { ch <- res })
	return <-ch
}
