package config

import (
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// position is a 1-based line and byte column in a document.
type position struct{ line, col int }

// index records where every key and value of a TOML document is, so that
// problems found after decoding can name their line. Paths are dotted key
// paths with array elements numbered from 0: "rule.1.backends.0.weight".
type index struct {
	lines  map[string]int           // path -> line of its key, table header or array element
	kinds  map[string]unstable.Kind // path -> kind of value; implicit tables are Table
	keyAt  map[position]string      // start of each part of a key -> full path
	arrays map[string]int           // path of an array of tables -> elements so far
	starts []int                    // byte offset at which each line starts
	table  string                   // path of the current table while walking
	ok     bool                     // the whole document parsed
}

// buildIndex walks the document with go-toml's low-level parser. It stops at
// the first syntax error (the decoder reports it) and indexes what came before.
func buildIndex(data []byte) *index {
	ix := &index{
		lines:  make(map[string]int),
		kinds:  make(map[string]unstable.Kind),
		keyAt:  make(map[position]string),
		arrays: make(map[string]int),
		starts: []int{0},
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

// pos returns the position of a byte range of the document.
func (ix *index) pos(r unstable.Range) position {
	off := int(r.Offset)
	line, _ := slices.BinarySearch(ix.starts, off+1)
	return position{line: line, col: off - ix.starts[line-1] + 1}
}

// keyParts returns the parts of the key of a key-value or table header.
func keyParts(n *unstable.Node) []*unstable.Node {
	var parts []*unstable.Node
	for it := n.Key(); it.Next(); {
		parts = append(parts, it.Node())
	}
	return parts
}

// resolve turns key parts into a path, stepping into the last element of
// every array of tables on the way, as TOML table headers do. Tables it
// creates implicitly get the line of the key that created them.
func (ix *index) resolve(base string, parts []*unstable.Node) string {
	path := base
	for _, k := range parts {
		path = joinPath(path, string(k.Data))
		if n := ix.arrays[path]; n > 0 {
			path += "." + strconv.Itoa(n-1)
		} else if _, ok := ix.kinds[path]; !ok {
			ix.kinds[path] = unstable.Table
			ix.lines[path] = ix.pos(k.Raw).line
		}
	}
	return path
}

// header records a [table] or [[array table]] header and makes it current.
func (ix *index) header(e *unstable.Node) {
	parts := keyParts(e)
	if len(parts) == 0 {
		return
	}
	path := joinPath(ix.resolve("", parts[:len(parts)-1]), string(parts[len(parts)-1].Data))
	if e.Kind == unstable.ArrayTable {
		n := ix.arrays[path]
		ix.arrays[path] = n + 1
		ix.kinds[path] = unstable.ArrayTable
		if n == 0 {
			ix.lines[path] = ix.pos(parts[0].Raw).line
		}
		path += "." + strconv.Itoa(n)
	}
	ix.kinds[path] = unstable.Table
	ix.recordKey(path, parts)
	ix.table = path
}

// recordKey notes the line of path and the position of each of its key parts.
func (ix *index) recordKey(path string, parts []*unstable.Node) {
	for i, k := range parts {
		p := ix.pos(k.Raw)
		if i == 0 {
			ix.lines[path] = p.line
		}
		ix.keyAt[p] = path
	}
}

// keyValue records a key-value inside the table at path table.
func (ix *index) keyValue(table string, kv *unstable.Node) {
	parts := keyParts(kv)
	if len(parts) == 0 {
		return
	}
	path := joinPath(ix.resolve(table, parts[:len(parts)-1]), string(parts[len(parts)-1].Data))
	ix.recordKey(path, parts)
	ix.value(path, kv.Value(), ix.lines[path])
}

// value records the kind of a value and, for arrays and inline tables, the
// lines of what is inside.
func (ix *index) value(path string, n *unstable.Node, line int) {
	ix.kinds[path] = n.Kind
	switch n.Kind {
	case unstable.Array:
		i := 0
		for it := n.Children(); it.Next(); {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			el := path + "." + strconv.Itoa(i)
			ix.lines[el] = ix.nodeLine(c, line)
			ix.value(el, c, ix.lines[el])
			i++
		}
	case unstable.InlineTable:
		for it := n.Children(); it.Next(); {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				ix.keyValue(path, c)
			}
		}
	}
}

// nodeLine returns the line a value starts on. Arrays carry no position, so
// their first element's is used; fallback is used when nothing is known.
func (ix *index) nodeLine(n *unstable.Node, fallback int) int {
	if n.Raw.Length > 0 {
		return ix.pos(n.Raw).line
	}
	if n.Kind == unstable.Array {
		for it := n.Children(); it.Next(); {
			if c := it.Node(); c.Kind != unstable.Comment {
				return ix.nodeLine(c, fallback)
			}
		}
	}
	return fallback
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
// schema's tables: [defaults] and health_check must be tables, rule an array
// of tables. The decoder's own messages for these name Go types.
func (ix *index) checkShapes(col *collector) {
	if k, ok := ix.kinds["defaults"]; ok && !isTable(k) {
		col.addf(ix.lines["defaults"], "defaults: want a table ([defaults]), not %s", kindName(k))
	}
	ix.checkTable(col, "defaults.health_check", "defaults: health_check")
	k, ok := ix.kinds["rule"]
	if !ok || (k != unstable.ArrayTable && k != unstable.Array) {
		if ok {
			col.addf(ix.lines["rule"], "rule: want an array of tables ([[rule]]), not %s", kindName(k))
		}
		return
	}
	for i := 0; ; i++ {
		path := "rule." + strconv.Itoa(i)
		k, ok := ix.kinds[path]
		if !ok {
			return
		}
		label := "rule #" + strconv.Itoa(i+1)
		if !isTable(k) {
			col.addf(ix.lines[path], "%s: want a table, not %s", label, kindName(k))
			continue
		}
		ix.checkTable(col, path+".health_check", label+": health_check")
	}
}

// checkTable reports a health_check at path that is present but neither a
// table nor a string (which names a state, such as "off").
func (ix *index) checkTable(col *collector, path, label string) {
	if k, ok := ix.kinds[path]; ok && !isTable(k) && k != unstable.String {
		col.addf(ix.lines[path], "%s: want a table, or \"off\", not %s", label, kindName(k))
	}
}

// splitRulePath splits a path inside a rule ("rule.2.health_check.x") into
// the rule's index and the rest; ok is false for paths outside rules.
func splitRulePath(path string) (i int, rest string, ok bool) {
	after, found := strings.CutPrefix(path, "rule.")
	if !found {
		return 0, "", false
	}
	num, rest, _ := strings.Cut(after, ".")
	i, err := strconv.Atoi(num)
	if err != nil {
		return 0, "", false
	}
	return i, rest, true
}
