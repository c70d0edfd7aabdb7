package config

import (
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// nodeID names a node of an index: a table, a key, an array or an element.
type nodeID int32

// root is the node of the whole document.
const root nodeID = 0

// node is one key, table, array or array element of a document.
type node struct {
	parent nodeID
	name   string        // the key part, or an array element's index
	kind   unstable.Kind // of the value; implicit tables are Table
	line   int32         // of its key, table header or array element
	last   nodeID        // of an array of tables: its last element so far
	elems  int32         // of an array of tables: elements so far
	schema schema        // which keys the node may hold
	bad    bool          // its key is one its table may not hold
}

// childKey finds a node by its parent and name.
type childKey struct {
	parent nodeID
	name   string
}

// index records where every key and value of a TOML document is, so that
// problems found after decoding can name their line. It is a tree of nodes,
// each named by one key part, so that its size is linear in the document's
// however deep the keys go. Nodes are looked up by dotted paths with array
// elements numbered from 0: "rule.1.backends.0.weight".
type index struct {
	nodes    []node              // by nodeID, in document order
	children map[childKey]nodeID // every node but the root
	starts   []int               // byte offset at which each line starts
	table    nodeID              // the current table while walking
	ok       bool                // the whole document parsed
}

// buildIndex walks the document with go-toml's low-level parser. It stops at
// the first syntax error (the decoder reports it) and indexes what came before.
func buildIndex(data []byte) *index {
	ix := &index{
		nodes:    []node{{kind: unstable.Table, schema: schemaTop}},
		children: make(map[childKey]nodeID),
		starts:   []int{0},
	}
	for i, c := range data {
		if c == '\n' {
			ix.starts = append(ix.starts, i+1)
		}
	}
	var p unstable.Parser
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			ix.header(e)
		case unstable.KeyValue:
			ix.keyValue(ix.table, e)
		}
	}
	ix.ok = p.Error() == nil
	return ix
}

// lineAt returns the 1-based line a byte range of the document starts on.
func (ix *index) lineAt(r unstable.Range) int {
	line, _ := slices.BinarySearch(ix.starts, int(r.Offset)+1)
	return line
}

// child returns the node called name in parent, making it (an implicit
// table on line) if there is none yet.
func (ix *index) child(parent nodeID, name string, line int) nodeID {
	k := childKey{parent, name}
	if id, ok := ix.children[k]; ok {
		return id
	}
	id := nodeID(len(ix.nodes))
	sch, bad := ix.nodes[parent].schema.child(name)
	ix.nodes = append(ix.nodes, node{parent: parent, name: name, kind: unstable.Table, line: int32(line), schema: sch, bad: bad})
	ix.children[k] = id
	return id
}

// find returns the node at a dotted path, or false if there is none.
func (ix *index) find(path string) (nodeID, bool) {
	id := root
	for path != "" {
		var name string
		name, path, _ = strings.Cut(path, ".")
		next, ok := ix.children[childKey{id, name}]
		if !ok {
			return 0, false
		}
		id = next
	}
	return id, true
}

// line returns the line of the node at path, or 0 if there is none.
func (ix *index) line(path string) int {
	if id, ok := ix.find(path); ok {
		return int(ix.nodes[id].line)
	}
	return 0
}

// kind returns the kind of the value at path, and whether there is one.
func (ix *index) kind(path string) (unstable.Kind, bool) {
	if id, ok := ix.find(path); ok {
		return ix.nodes[id].kind, true
	}
	return 0, false
}

// keyParts returns the parts of the key of a key-value or table header.
func keyParts(n *unstable.Node) []*unstable.Node {
	var parts []*unstable.Node
	for it := n.Key(); it.Next(); {
		parts = append(parts, it.Node())
	}
	return parts
}

// resolve follows key parts from base, stepping into the last element of
// every array of tables on the way, as TOML table headers do. Tables it
// creates implicitly get the line of the key that created them.
func (ix *index) resolve(base nodeID, parts []*unstable.Node) nodeID {
	id := base
	for _, k := range parts {
		id = ix.child(id, string(k.Data), ix.lineAt(k.Raw))
		if last := ix.nodes[id].last; last != root {
			id = last
		}
	}
	return id
}

// header records a [table] or [[array table]] header and makes it current.
func (ix *index) header(e *unstable.Node) {
	parts := keyParts(e)
	if len(parts) == 0 {
		return
	}
	line := ix.lineAt(parts[0].Raw)
	id := ix.child(ix.resolve(root, parts[:len(parts)-1]), string(parts[len(parts)-1].Data), line)
	if e.Kind == unstable.ArrayTable {
		n := &ix.nodes[id]
		n.kind = unstable.ArrayTable
		if n.elems == 0 {
			n.line = int32(line)
		}
		n.elems++
		el := ix.child(id, strconv.Itoa(int(n.elems-1)), line)
		ix.nodes[id].last = el
		id = el
	}
	ix.nodes[id].kind = unstable.Table
	ix.nodes[id].line = int32(line)
	ix.table = id
}

// keyValue records a key-value inside the table table.
func (ix *index) keyValue(table nodeID, kv *unstable.Node) {
	parts := keyParts(kv)
	if len(parts) == 0 {
		return
	}
	line := ix.lineAt(parts[0].Raw)
	id := ix.child(ix.resolve(table, parts[:len(parts)-1]), string(parts[len(parts)-1].Data), line)
	ix.nodes[id].line = int32(line)
	ix.value(id, kv.Value(), line)
}

// value records the kind of the value n of node id and, for arrays and
// inline tables, what is inside. It returns the line the value starts on:
// arrays carry no position, so theirs is their first element's; fallback
// when nothing is known.
func (ix *index) value(id nodeID, n *unstable.Node, fallback int) int {
	line := fallback
	if n.Raw.Length > 0 {
		line = ix.lineAt(n.Raw)
	}
	ix.nodes[id].kind = n.Kind
	switch n.Kind {
	case unstable.Array:
		i := 0
		for it := n.Children(); it.Next(); {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			el := ix.child(id, strconv.Itoa(i), line)
			elLine := ix.value(el, c, line)
			ix.nodes[el].line = int32(elLine)
			if i == 0 && n.Raw.Length == 0 {
				line = elLine
			}
			i++
		}
	case unstable.InlineTable:
		for it := n.Children(); it.Next(); {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				ix.keyValue(id, c)
			}
		}
	}
	return line
}

// joinPath appends a key to a path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	if key == "" {
		return path
	}
	return path + "." + key
}

// kindName describes a kind of TOML value for error messages.
func kindName(k unstable.Kind) string {
	switch k {
	case unstable.String:
		return "a string"
	case unstable.Integer:
		return "an integer"
	case unstable.Float:
		return "a float"
	case unstable.Bool:
		return "a boolean"
	case unstable.Array:
		return "an array"
	case unstable.ArrayTable:
		return "an array of tables"
	case unstable.Table, unstable.InlineTable:
		return "a table"
	default:
		return "a date or time"
	}
}

// isTable reports whether k is a table, written either way.
func isTable(k unstable.Kind) bool {
	return k == unstable.Table || k == unstable.InlineTable
}

// checkShapes reports values whose TOML type cannot be decoded into the
// schema's tables: [defaults], health_check, tls and backend_tls must be
// tables (the last three may be a string such as "off"), rule and route
// arrays of tables. The decoder's own messages for these name Go types.
func (ix *index) checkShapes(col *collector) {
	if k, ok := ix.kind("defaults"); ok && !isTable(k) {
		col.addf(ix.line("defaults"), "defaults: want a table ([defaults]), not %s", kindName(k))
	}
	ix.checkOwner(col, "defaults", "defaults")
	ix.checkArray(col, "rule", "rule", "[[rule]]", func(path, label string) {
		ix.checkOwner(col, path, label)
	})
}

// checkOwner checks the tables of the rule, [defaults] or route at path,
// and a rule's routes.
func (ix *index) checkOwner(col *collector, path, label string) {
	for _, key := range []string{"health_check", "tls", "backend_tls"} {
		ix.checkTable(col, path+"."+key, label+": "+key)
	}
	ix.checkArray(col, path+".route", label+": route", "[[rule.route]]", func(path, label string) {
		ix.checkOwner(col, path, label)
	})
}

// checkArray checks that the value at path, if any, is an array of tables
// (written as header, which shows, or inline), and calls each for every
// element that is a table, with its path and label ("rule #2").
func (ix *index) checkArray(col *collector, path, label, header string, each func(path, label string)) {
	k, ok := ix.kind(path)
	if !ok {
		return
	}
	if k != unstable.ArrayTable && k != unstable.Array {
		col.addf(ix.line(path), "%s: want an array of tables (%s), not %s", label, header, kindName(k))
		return
	}
	for i := 0; ; i++ {
		elem := path + "." + strconv.Itoa(i)
		k, ok := ix.kind(elem)
		if !ok {
			return
		}
		elemLabel := label + " #" + strconv.Itoa(i+1)
		if !isTable(k) {
			col.addf(ix.line(elem), "%s: want a table, not %s", elemLabel, kindName(k))
			continue
		}
		each(elem, elemLabel)
	}
}

// checkTable reports a table at path that is present but neither a table
// nor a string (which names a state, such as "off").
func (ix *index) checkTable(col *collector, path, label string) {
	if k, ok := ix.kind(path); ok && !isTable(k) && k != unstable.String {
		col.addf(ix.line(path), "%s: want a table, or \"off\", not %s", label, kindName(k))
	}
}
