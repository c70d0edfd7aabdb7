package admit

import "net/netip"

const (
	// sweepPerOp is how many of the oldest-idle clients an Admit checks,
	// and forgets if their bucket has refilled, so idle state drains while
	// traffic flows without a goroutine of its own.
	sweepPerOp = 2
	// maxFree is how many forgotten client entries are kept for reuse, so a
	// client that comes and goes costs no allocation.
	maxFree = 64
	// shrinkMin is the size a client map must have reached before it is
	// rebuilt smaller; Go maps never give memory back on delete.
	shrinkMin = 1024
)

// client is what a Gate knows about one client IP.
type client struct {
	addr netip.Addr
	live int   // admitted connections not yet released
	tat  int64 // token bucket's theoretical arrival time; full when <= now

	// idle is set while the client is on the idle list: no live connection
	// and a bucket still refilling.
	idle       bool
	prev, next *client // idle list links; next also links the free list
}

// clientTable is the per-IP state of a Gate: every client with a live
// connection, plus at most maxIdle idle ones on a list ordered from
// oldest-idle to newest. It is guarded by the Gate's mutex.
type clientTable struct {
	m    map[netip.Addr]*client
	peak int // largest len(m) since m was made

	head, tail *client // idle list, oldest first
	nIdle      int
	maxIdle    int

	free  *client // forgotten entries kept for reuse, linked by next
	nFree int
}

// init prepares an empty table that remembers at most maxIdle idle clients
// (at least one).
func (t *clientTable) init(maxIdle int) {
	t.m = make(map[netip.Addr]*client)
	t.maxIdle = max(maxIdle, 1)
}

// get returns the entry for a, or nil.
func (t *clientTable) get(a netip.Addr) *client {
	return t.m[a]
}

// add makes a fresh entry for a, which must not have one: no live
// connections and a full bucket.
func (t *clientTable) add(a netip.Addr) *client {
	c := t.free
	if c != nil {
		t.free = c.next
		t.nFree--
		*c = client{addr: a}
	} else {
		c = &client{addr: a}
	}
	t.m[a] = c
	t.peak = max(t.peak, len(t.m))
	return c
}

// acquire counts one more live connection for c, taking it off the idle
// list.
func (t *clientTable) acquire(c *client) {
	if c.idle {
		t.unlink(c)
	}
	c.live++
}

// idle puts c, which has just lost its last live connection but whose
// bucket is not full, on the idle list, forgetting the oldest-idle client
// if the list is over its cap.
func (t *clientTable) idle(c *client) {
	t.pushBack(c)
	for t.nIdle > t.maxIdle {
		t.remove(t.head)
	}
}

// touch marks an idle client as recently seen, so it is forgotten last.
func (t *clientTable) touch(c *client) {
	if c.idle {
		t.unlink(c)
		t.pushBack(c)
	}
}

// sweep forgets up to n of the oldest-idle clients whose bucket is full at
// time now, stopping at the first that is not.
func (t *clientTable) sweep(now int64, n int) {
	for i := 0; i < n && t.head != nil && t.head.tat <= now; i++ {
		t.remove(t.head)
	}
}

// dropIdle forgets every idle client.
func (t *clientTable) dropIdle() {
	for t.head != nil {
		t.remove(t.head)
	}
}

// remove forgets c and keeps its entry for reuse.
func (t *clientTable) remove(c *client) {
	if c.idle {
		t.unlink(c)
	}
	delete(t.m, c.addr)
	if t.nFree < maxFree {
		*c = client{next: t.free}
		t.free = c
		t.nFree++
	}
	t.maybeShrink()
}

// maybeShrink rebuilds the map once it holds a quarter of its peak or less,
// so that memory taken during an address spray is given back afterwards.
// Each rebuild costs at most a third of the deletes since the previous one.
func (t *clientTable) maybeShrink() {
	if t.peak < shrinkMin || len(t.m) > t.peak/4 {
		return
	}
	m := make(map[netip.Addr]*client, len(t.m))
	for a, c := range t.m {
		m[a] = c
	}
	t.m = m
	t.peak = len(m)
}

// pushBack appends c, which is not on the idle list, as its newest entry.
func (t *clientTable) pushBack(c *client) {
	c.idle = true
	c.prev, c.next = t.tail, nil
	if t.tail != nil {
		t.tail.next = c
	} else {
		t.head = c
	}
	t.tail = c
	t.nIdle++
}

// unlink takes c off the idle list.
func (t *clientTable) unlink(c *client) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		t.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		t.tail = c.prev
	}
	c.prev, c.next, c.idle = nil, nil, false
	t.nIdle--
}
