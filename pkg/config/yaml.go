package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// parser collects errors while walking one configuration (the main file and
// its includes). Every check reports and carries on, so that one run finds
// every error.
type parser struct {
	opts Options
	errs Errors
	// users and groups cache lookups: defaults are re-applied to every
	// service and a config with 1,000 services names the same user often.
	users   map[string]userResult
	groups  map[string]groupResult
	members map[string]membersResult
	// creds holds one Credential per distinct value: services running as
	// the same user share it (never modified after parsing).
	creds map[string]*Credential
}

// field is one value in the tree with enough context to report about it.
type field struct {
	file string
	path string     // dotted key path, e.g. services.daytime.socket.backlog
	key  *yaml.Node // the key node; nil for list items
	val  *yaml.Node // the value, aliases resolved
	// fromDefaults says the value was written under defaults: and applied
	// to a service that does not set it.
	fromDefaults bool
}

// keyPos is where the key was written (the item itself for list items).
func (f field) keyPos() Position {
	if f.key != nil {
		return pos(f.file, f.key)
	}
	return pos(f.file, f.val)
}

func (f field) valPos() Position { return pos(f.file, f.val) }

func pos(file string, n *yaml.Node) Position {
	if n == nil {
		return Position{File: file, Line: 1, Col: 1}
	}
	return Position{File: file, Line: lineCol(n.Line), Col: lineCol(n.Column)}
}

// lineCol is a line or column number as a Position holds it: at least 1,
// at most what an int32 holds.
func lineCol(n int) int32 {
	return int32(min(max(n, 1), math.MaxInt32))
}

func (p *parser) add(at Position, key, format string, args ...any) {
	p.errs = append(p.errs, Error{Pos: at, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// errKey reports about the key of f (unknown, not allowed here, conflicts).
func (p *parser) errKey(f field, format string, args ...any) {
	p.add(f.keyPos(), f.path, format, args...)
}

// errVal reports about the value of f (wrong type, out of range).
func (p *parser) errVal(f field, format string, args ...any) {
	p.add(f.valPos(), f.path, format, args...)
}

// resolve follows an alias to the node it names. yaml.v3 never makes an
// alias point at nothing or at another alias, but a null stands in if it
// ever did, so that the walk cannot crash on a malformed tree.
func resolve(n *yaml.Node) *yaml.Node {
	orig := n
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: orig.Line, Column: orig.Column}
	}
	return n
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document decodes data into its root node. It returns nil when the file
// is empty or broken (the syntax error is recorded).
func (p *parser) document(file string, data []byte) (root *yaml.Node) {
	defer func() {
		// yaml.v3 has panicked on hostile input before; a bad file must
		// be an error, never a crash of superd or a reload.
		if r := recover(); r != nil {
			p.add(Position{File: file, Line: 1, Col: 1}, "", "YAML syntax error: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		p.syntax(file, data, err)
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		p.syntax(file, data, err)
	default:
		p.add(pos(file, &extra), "", "a configuration file holds one YAML document; remove the second one (from ---)")
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root = resolve(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil
	}
	return root
}

// syntax records a yaml.v3 syntax error. yaml.v3 gives the line where
// the enclosing construct began, if not the first, and never a column; the
// line reported is instead the first one at which the file stops being
// valid YAML, found by parsing ever longer prefixes of it. The column is 1
// unless the culprit is a byte that can be pinned exactly.
func (p *parser) syntax(file string, data []byte, err error) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		msg = m[2]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	at := Position{File: file, Line: 1, Col: 1}
	var found bool
	if strings.Contains(msg, "control characters") || strings.Contains(msg, "UTF-") || strings.Contains(msg, "Unicode") {
		var line, col int
		line, col, found = firstBadByte(data)
		at.Line, at.Col = lineCol(line), lineCol(col)
	}
	if !found {
		at.Line = lineCol(firstBadLine(data))
	}
	p.add(at, "", "YAML syntax error: %s", msg)
}

// firstBadLine returns the line k+1 such that the first k lines parse and
// the first k+1 do not, by bisection: O(log n) parses, and only when the
// whole file failed.
func firstBadLine(data []byte) int {
	var ends []int // offset just past each line
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	lo, hi := 0, len(ends) // the first lo lines parse; the first hi do not
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if validYAML(data[:ends[mid-1]]) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

func validYAML(data []byte) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		switch err := dec.Decode(&n); {
		case errors.Is(err, io.EOF):
			return true
		case err != nil:
			return false
		}
	}
}

// firstBadByte finds the first control character or invalid UTF-8 byte,
// which yaml.v3 rejects without saying where.
func firstBadByte(data []byte) (line, col int, found bool) {
	line, col = 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == '\n':
			line, col = line+1, 1
			i += size
			continue
		case r == utf8.RuneError && size == 1,
			r < 0x20 && r != '\t' && r != '\r',
			r == 0x7f:
			return line, col, true
		}
		col++
		i += size
	}
	return 1, 1, false
}

// what names the kind of a node for "expected X, got Y" messages.
func what(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "nothing (null)"
		case "!!timestamp":
			return "a timestamp"
		case "!!binary":
			return "binary data"
		}
		return "a value tagged " + n.ShortTag()
	}
	return "an unexpected YAML node"
}

func (p *parser) wrongType(f field, want string) {
	n := f.val
	hint := ""
	if want == "a string" && n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null" {
		hint = fmt.Sprintf(" (quote it: %q)", n.Value)
	}
	p.errVal(f, "expected %s, got %s%s", want, what(n), hint)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// entries lists the keys of a mapping in order, reporting non-string keys,
// merge keys and duplicates (the first one written is kept). A null value
// is an empty mapping when nullOK.
func (p *parser) entries(f field, nullOK bool) ([]field, bool) {
	n := f.val
	if nullOK && isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		p.wrongType(f, "a mapping")
		return nil, false
	}
	out := make([]field, 0, len(n.Content)/2)
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		at := field{file: f.file, path: f.path, key: k, val: v, fromDefaults: f.fromDefaults}
		if k.Kind != yaml.ScalarNode {
			p.errKey(at, "a key must be a string, not %s", what(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			at.path = join(f.path, "<<")
			p.errKey(at, "merge keys (<<) are not supported; write the keys out, or use defaults: for keys every service shares")
			continue
		}
		at.path = join(f.path, k.Value)
		if first, dup := seen[k.Value]; dup {
			p.errKey(at, "duplicate key (first set at %s)", pos(f.file, first))
			continue
		}
		seen[k.Value] = k
		out = append(out, at)
	}
	return out, true
}

// items lists the elements of a list; a single scalar stands for a list of
// one when scalarOK, as `listen: tcp://:13` does. A null value is an empty
// list.
func (p *parser) items(f field, scalarOK bool) ([]field, bool) {
	n := f.val
	switch {
	case isNull(n):
		return nil, true
	case n.Kind == yaml.ScalarNode && scalarOK:
		return []field{f}, true
	case n.Kind != yaml.SequenceNode && scalarOK:
		p.wrongType(f, "a string or a list")
		return nil, false
	case n.Kind != yaml.SequenceNode:
		p.wrongType(f, "a list")
		return nil, false
	}
	out := make([]field, len(n.Content))
	for i, c := range n.Content {
		out[i] = field{file: f.file, path: fmt.Sprintf("%s[%d]", f.path, i), val: resolve(c), fromDefaults: f.fromDefaults}
	}
	return out, true
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// unknownKey reports a key that is not in known, suggesting the nearest one.
func (p *parser) unknownKey(f field, name string, known []string) {
	if best := closest(name, known); best != "" {
		p.errKey(f, "unknown key; did you mean %q?", best)
		return
	}
	if len(known) <= 8 {
		p.errKey(f, "unknown key (known keys: %s)", strings.Join(known, ", "))
		return
	}
	p.errKey(f, "unknown key")
}

// closest returns the known word nearest to s if it is at most two edits
// away: close enough to be a typo, far enough not to suggest nonsense.
func closest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		// Long keys are never typos of ours; skip the quadratic work.
		if a == b {
			return 0
		}
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
