package backend

import "time"

// slowStartSteps is how many times its weight a backend has in a pick of
// a pool with slow start once its ramp is over: it starts the ramp at
// its weight, 1/20 of that.
const slowStartSteps = 20

// effectiveWeight returns the weight b has in a pick at now (see
// Backend.eff). Without slow start it is b's Weight. With it every
// candidate's weight is scaled by slowStartSteps, and a backend within
// the slow start time of its last change has from its Weight, 1/20 of
// full, growing in proportion to the time since, to slowStartSteps times
// it. For a candidate (ready and up) the last change is always its coming
// up or its return to ready, the two that start a ramp; a backend that
// never changed since it was configured is at full weight.
func (p *Pool) effectiveWeight(b *Backend, now time.Time) int {
	w := b.Weight()
	if p.slowStart <= 0 {
		return w
	}
	since := b.rt.changed.Load()
	if since == 0 {
		return w * slowStartSteps
	}
	elapsed := max(0, now.Sub(time.Unix(0, since)))
	if elapsed >= p.slowStart {
		return w * slowStartSteps
	}
	frac := float64(elapsed) / float64(p.slowStart)
	return max(w, int(float64(w)*(1+(slowStartSteps-1)*frac)))
}
