package importer

import (
	"strconv"
	"strings"
)

// xEntry is one top-level entry of an xinetd configuration file, as
// written.
type xEntry struct {
	kind string // "service", "defaults", "include" or "includedir"
	name string // the service name, or the file or directory to include
	file string
	line int
	// inlineBrace is set when '{' was on the service line itself, which
	// xinetd does not accept: it skips such an entry.
	inlineBrace bool
	attrs       []xAttr
}

// xAttr is one attribute line: name, operator and values.
type xAttr struct {
	name   string
	op     string // "=", "+=" or "-="
	values []string
	file   string
	line   int
	// hash is set when a value starts with '#': xinetd takes only lines
	// that start with one as comments, so the rest of this line is values.
	hash bool
}

// parseXinetd reads one xinetd.conf(5) file. Comments are lines whose first
// non-blank character is '#'; an entry is `service NAME`, `defaults`,
// `include FILE` or `includedir DIR`; service and defaults are followed by
// a line holding only '{', attribute lines `NAME OP VALUE...`, and a line
// holding only '}'. Values are split on blanks: xinetd has no quoting.
func parseXinetd(file string, data []byte) ([]xEntry, error) {
	var out []xEntry
	var cur *xEntry
	wantBrace := false
	bad := func(n int, format string) error {
		return &SyntaxError{File: file, Line: n, Msg: format}
	}
	for i, raw := range lines(data) {
		n := i + 1
		if err := checkText(file, n, raw); err != nil {
			return nil, err
		}
		l := strings.TrimSpace(raw)
		if l == "" || l[0] == '#' {
			continue
		}
		f := fields(l)
		switch {
		case wantBrace:
			if l != "{" {
				return nil, bad(n, "expected a line holding only '{' to open the entry of line "+strconv.Itoa(cur.line))
			}
			wantBrace = false
		case cur != nil:
			if l == "}" {
				out = append(out, *cur)
				cur = nil
				continue
			}
			a, ok := parseAttr(l)
			if !ok {
				return nil, bad(n, "expected ATTRIBUTE = VALUE..., ATTRIBUTE += VALUE... or ATTRIBUTE -= VALUE... (or '}' alone to close the entry of line "+strconv.Itoa(cur.line)+")")
			}
			a.file, a.line = file, n
			cur.attrs = append(cur.attrs, a)
		default:
			switch f[0] {
			case "service":
				if len(f) < 2 || f[1] == "{" {
					return nil, bad(n, "service needs a name: service NAME")
				}
				e := xEntry{kind: "service", name: f[1], file: file, line: n}
				// xinetd reads the name and ignores the rest of the line.
				if len(f) > 2 && f[len(f)-1] == "{" {
					e.inlineBrace = true
					cur = &e
					continue
				}
				cur, wantBrace = &e, true
			case "defaults":
				e := xEntry{kind: "defaults", file: file, line: n}
				if len(f) > 1 && f[len(f)-1] == "{" {
					e.inlineBrace = true
					cur = &e
					continue
				}
				cur, wantBrace = &e, true
			case "include", "includedir":
				if len(f) < 2 {
					return nil, bad(n, f[0]+" needs a "+map[string]string{"include": "file", "includedir": "directory"}[f[0]])
				}
				out = append(out, xEntry{kind: f[0], name: f[1], file: file, line: n})
			default:
				return nil, bad(n, "expected service NAME, defaults, include FILE or includedir DIR, got "+strconv.Quote(f[0]))
			}
		}
	}
	if cur != nil {
		what := "service " + cur.name
		if cur.kind == "defaults" {
			what = "defaults"
		}
		if wantBrace {
			return nil, bad(cur.line, what+" is not followed by '{'")
		}
		return nil, bad(cur.line, what+" is not closed by '}' before the end of the file")
	}
	return out, nil
}

// parseAttr splits NAME OP VALUE...; the operator may touch the name or
// the first value (port=13, port =13).
func parseAttr(l string) (xAttr, bool) {
	i := 0
	for i < len(l) && (isWordByte(l[i])) {
		i++
	}
	name := l[:i]
	rest := strings.TrimLeft(l[i:], " \t")
	var op string
	switch {
	case strings.HasPrefix(rest, "+="):
		op = "+="
	case strings.HasPrefix(rest, "-="):
		op = "-="
	case strings.HasPrefix(rest, "="):
		op = "="
	}
	if name == "" || op == "" {
		return xAttr{}, false
	}
	a := xAttr{name: name, op: op, values: fields(rest[len(op):])}
	for _, v := range a.values {
		if strings.HasPrefix(v, "#") {
			a.hash = true
		}
	}
	return a, true
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}
