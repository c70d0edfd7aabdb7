package backend

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// State is a backend's admin state: what an operator has set on it at
// runtime, apart from its health.
type State uint32

// The admin states of a backend.
const (
	// Ready takes new connections while the backend is healthy.
	Ready State = iota
	// Drain takes no new connection (not even as a retry target); live
	// ones go on, and health checks go on.
	Drain
	// Maint is Drain with the health checks stopped: the backend is down
	// for maintenance, and its health is not known.
	Maint
)

// MaxWeight is the largest weight a backend may have, at runtime as in
// the config file.
const MaxWeight = math.MaxInt32

// String returns the state's name: "ready", "drain" or "maint".
func (s State) String() string {
	switch s {
	case Ready:
		return "ready"
	case Drain:
		return "drain"
	case Maint:
		return "maint"
	}
	return fmt.Sprintf("State(%d)", uint32(s))
}

// States are every admin state, in order.
var States = []State{Ready, Drain, Maint}

// ParseState returns the state named s ("ready", "drain" or "maint").
func ParseState(s string) (State, error) {
	for _, st := range States {
		if st.String() == s {
			return st, nil
		}
	}
	return Ready, fmt.Errorf("state %q: want ready, drain or maint", s)
}

// adminState is what an operator set on a backend at runtime, and when its
// state last changed. After Pool.Inherit an old and a new Backend share
// one adminState, so a change reaches connections still retrying on the old
// pool, and a reload keeps what was set.
type adminState struct {
	state   atomic.Uint32 // a State
	weight  atomic.Int64  // the weight picks use, 1 to MaxWeight
	changed atomic.Int64  // Unix nanoseconds of the last admin or health change; 0: none yet
}

// newAdminState returns the state of a ready backend with weight.
func newAdminState(weight int) *adminState {
	rt := new(adminState)
	rt.weight.Store(int64(max(1, weight)))
	return rt
}

// State returns the backend's admin state.
func (b *Backend) State() State { return State(b.rt.state.Load()) }

// Weight returns the backend's relative share as picks use it now: the
// weight set at runtime, or else the configured one, at least 1.
func (b *Backend) Weight() int { return int(b.rt.weight.Load()) }

// ConfigWeight returns the backend's weight as configured, at least 1.
func (b *Backend) ConfigWeight() int { return max(1, b.cfg.Weight) }

// LastChange returns when the backend's admin state or health last
// changed, or the zero time if neither has since it was configured.
func (b *Backend) LastChange() time.Time {
	n := b.rt.changed.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// usable reports whether the backend's admin state lets it take new
// connections.
func (b *Backend) usable() bool { return b.State() == Ready }

// SetState sets the backend's admin state; the next pick sees it. Live
// connections are not touched. A change is logged and recorded as the
// last change.
func (b *Backend) SetState(s State) {
	if old := State(b.rt.state.Swap(uint32(s))); old != s {
		b.rt.changed.Store(b.pool.now().UnixNano())
		b.pool.logger.Info("backend state set", "rule", b.pool.rule, "backend", b.cfg.Address.String(),
			"from", old.String(), "to", s.String())
	}
}

// SetWeight sets the weight picks use, from the next pick on; it must be
// 1 to MaxWeight. A reload that changes the backend's weight in the file
// sets it back to the file's.
func (b *Backend) SetWeight(w int) error {
	if w < 1 || w > MaxWeight {
		return fmt.Errorf("weight %d: must be 1 to %d", w, MaxWeight)
	}
	if old := b.rt.weight.Swap(int64(w)); old != int64(w) {
		b.pool.logger.Info("backend weight set", "rule", b.pool.rule, "backend", b.cfg.Address.String(),
			"from", old, "to", w)
	}
	return nil
}

// Restore sets what a previous process had set on the backend at runtime
// (hitless upgrade): its state, its weight and when its state last
// changed (zero: never). As across a reload, the weight is kept only when
// the configured weight is still configWeight, the one the previous
// process had. It logs nothing.
func (b *Backend) Restore(s State, weight, configWeight int, changed time.Time) {
	b.rt.state.Store(uint32(s))
	if configWeight == b.ConfigWeight() && weight >= 1 && weight <= MaxWeight {
		b.rt.weight.Store(int64(weight))
	}
	if !changed.IsZero() {
		b.rt.changed.Store(changed.UnixNano())
	}
}

// markChanged records a health change as the last change.
func (b *Backend) markChanged() { b.rt.changed.Store(b.pool.now().UnixNano()) }

// inheritRuntime shares old's adminState with b. When the configured weight
// changed, the file wins: the runtime weight becomes the configured one.
func (b *Backend) inheritRuntime(old *Backend) {
	b.rt = old.rt
	if old.cfg.Weight != b.cfg.Weight {
		b.rt.weight.Store(int64(b.ConfigWeight()))
	}
}
