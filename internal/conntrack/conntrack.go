// Package conntrack keeps the table of live connections and UDP sessions of
// a rule: what the admin API lists, what an operator can close, and what a
// graceful stop waits for.
package conntrack

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/access"
)

// Counters are live byte counts of one entry, updated by whoever moves the bytes.
type Counters interface {
	BytesUp() int64
	BytesDown() int64
}

// Entry is one live connection or UDP session.
type Entry struct {
	ID     uint64
	Rule   string
	Proto  string // "tcp" or "udp"
	Client string
	// Listen is the port the client came in on, on a rule that listens
	// on a range of ports; 0 on a rule of one port.
	Listen  uint16
	Backend string
	Since   time.Time
	Bytes   Counters
	// Tally, if not nil, is what the entry's bytes count towards: an
	// identity (its backend's counters) by which Traffic sums the live
	// entries. A nil Tally counts towards nothing.
	Tally any
	// Stop ends the entry's connection with a reason (access.Drained,
	// access.Closed); it must be safe to call more than once and
	// concurrently.
	Stop func(reason access.End)

	table *Table // the table it was added to, which guards Backend
}

// Snapshot is a point-in-time copy of an entry for reports.
type Snapshot struct {
	ID      uint64    `json:"id"`
	Rule    string    `json:"rule"`
	Proto   string    `json:"proto"`
	Client  string    `json:"client"`
	Listen  uint16    `json:"listen,omitempty"` // a ranged rule's: the port the client came in on
	Backend string    `json:"backend"`
	Since   time.Time `json:"since"`
	Up      int64     `json:"bytes_up"`
	Down    int64     `json:"bytes_down"`
}

// IDs hands out connection ids unique within a process.
type IDs struct{ n atomic.Uint64 }

// Next returns a new id.
func (g *IDs) Next() uint64 { return g.n.Add(1) }

// Table is the set of live entries of one rule. The zero value is not
// usable; call NewTable.
type Table struct {
	mu      sync.Mutex // guards the following fields
	entries map[uint64]*Entry
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{entries: make(map[uint64]*Entry)}
}

// Add registers e.
func (t *Table) Add(e *Entry) {
	t.mu.Lock()
	e.table = t
	t.entries[e.ID] = e
	t.mu.Unlock()
}

// SetBackend records that e now goes to backend, whose bytes count
// towards tally (a connection that was still connecting when it was
// added). Call it after Add.
func (e *Entry) SetBackend(backend string, tally any) {
	e.table.mu.Lock()
	e.Backend, e.Tally = backend, tally
	e.table.mu.Unlock()
}

// Remove forgets the entry with id. settle, if not nil, is called under
// the table's lock as the entry goes: there the caller adds the entry's
// final bytes to its tally's own counters, so that whoever reads those
// inside Traffic sees the bytes either live or settled, never both nor
// neither, and a total never goes back.
func (t *Table) Remove(id uint64, settle func()) {
	t.mu.Lock()
	delete(t.entries, id)
	if settle != nil {
		settle()
	}
	t.mu.Unlock()
}

// Traffic is a pair of byte counts: up (client→backend) and down.
type Traffic struct{ Up, Down int64 }

// Traffic calls read under the table's lock with the bytes of the live
// entries summed by their Tally (entries without one are left out). read
// must be quick and must not call the table.
func (t *Table) Traffic(read func(live map[any]Traffic)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	live := make(map[any]Traffic)
	for _, e := range t.entries {
		if e.Tally == nil || e.Bytes == nil {
			continue
		}
		tr := live[e.Tally]
		tr.Up += e.Bytes.BytesUp()
		tr.Down += e.Bytes.BytesDown()
		live[e.Tally] = tr
	}
	read(live)
}

// Len returns the number of live entries.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// Stop ends the entry with id and reports whether it was live.
func (t *Table) Stop(id uint64, reason access.End) bool {
	t.mu.Lock()
	e := t.entries[id]
	t.mu.Unlock()
	if e == nil {
		return false
	}
	e.Stop(reason)
	return true
}

// StopAll ends every live entry with reason.
func (t *Table) StopAll(reason access.End) {
	t.mu.Lock()
	entries := make([]*Entry, 0, len(t.entries))
	for _, e := range t.entries {
		entries = append(entries, e)
	}
	t.mu.Unlock()
	for _, e := range entries {
		e.Stop(reason)
	}
}

// Snapshots returns the live entries ordered by id.
func (t *Table) Snapshots() []Snapshot {
	t.mu.Lock()
	out := make([]Snapshot, 0, len(t.entries))
	for _, e := range t.entries {
		s := Snapshot{ID: e.ID, Rule: e.Rule, Proto: e.Proto, Client: e.Client, Listen: e.Listen, Backend: e.Backend, Since: e.Since}
		if e.Bytes != nil {
			s.Up, s.Down = e.Bytes.BytesUp(), e.Bytes.BytesDown()
		}
		out = append(out, s)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
