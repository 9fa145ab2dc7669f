package importer

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/superd/superd/pkg/listener"

	"github.com/superd/superd/pkg/config"
)

// maxIncludeDepth bounds include nesting, so that a loop cannot recurse
// forever.
const maxIncludeDepth = 16

// Xinetd converts the xinetd configuration at path (usually
// /etc/xinetd.conf) and the files it includes to superd YAML. It fails
// only when path cannot be read or a file is not xinetd.conf(5) syntax;
// everything else that cannot be converted is a warning. A nil fsys reads
// the host's files.
func Xinetd(path string, fsys FS) (Result, error) {
	if fsys == nil {
		fsys = HostFS{}
	}
	data, err := fsys.ReadFile(path)
	if err != nil {
		return Result{}, err
	}
	w := newWarnings()
	l := &xloader{fsys: fsys, w: w, active: map[string]bool{}}
	entries, err := l.load(path, data, 0)
	if err != nil {
		return Result{}, err
	}
	c := &xconv{w: w, db: loadServices(fsys), scalarDefaults: map[string]xAttr{}, listDefaults: map[string][]xItem{}, names: namer{}}
	svcs, defs := c.convert(entries)
	wrapRules(fsys, w)
	return finish(fmt.Sprintf("converted from the xinetd configuration %s", path), defs, svcs, w, path), nil
}

// finish resolves address conflicts, emits the YAML and checks it.
func finish(what string, defs *defaultsSection, svcs []*service, w *warnings, file string) Result {
	header := []string{
		"superd configuration " + sanitizeComment(what) + ".",
		"Review every warning the import printed, then run `superd check -c FILE`.",
	}
	out := emit(header, defs, svcs)
	selfCheck(out, svcs, w, file)
	return Result{YAML: out, Warnings: w.sorted()}
}

// xloader reads a configuration file and, in place of each include and
// includedir, the entries of the files they name.
type xloader struct {
	fsys   FS
	w      *warnings
	active map[string]bool // files being read, to stop include loops
}

func (l *xloader) load(file string, data []byte, depth int) ([]xEntry, error) {
	l.w.file(file)
	entries, err := parseXinetd(file, data)
	if err != nil {
		return nil, err
	}
	l.active[path.Clean(file)] = true
	defer delete(l.active, path.Clean(file))
	var out []xEntry
	for _, e := range entries {
		switch e.kind {
		case "include":
			more, err := l.include(e, resolve(file, e.name), depth)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		case "includedir":
			dir := resolve(file, e.name)
			list, err := l.fsys.ReadDir(dir)
			if err != nil {
				l.w.add(e.file, e.line, "includedir %s: %v; xinetd skips it too", e.name, unwrapPath(err))
				continue
			}
			// xinetd reads the files in strcmp order, skipping names
			// with a '.' (editor and package manager leftovers) or
			// ending in '~', and anything but regular files.
			names := make([]string, 0, len(list))
			for _, de := range list {
				if strings.Contains(de.Name(), ".") || strings.HasSuffix(de.Name(), "~") || de.IsDir() {
					continue
				}
				names = append(names, de.Name())
			}
			slices.Sort(names)
			for _, n := range names {
				more, err := l.include(e, path.Join(dir, n), depth)
				if err != nil {
					return nil, err
				}
				out = append(out, more...)
			}
		default:
			out = append(out, e)
		}
	}
	return out, nil
}

func (l *xloader) include(e xEntry, file string, depth int) ([]xEntry, error) {
	if depth >= maxIncludeDepth || l.active[path.Clean(file)] {
		l.w.add(e.file, e.line, "%s %s: includes itself (through %d levels); not read again", e.kind, e.name, depth+1)
		return nil, nil
	}
	data, err := l.fsys.ReadFile(file)
	if err != nil {
		l.w.add(e.file, e.line, "%s %s: %v; xinetd skips it too", e.kind, file, unwrapPath(err))
		return nil, nil
	}
	return l.load(file, data, depth+1)
}

// resolve names an included file: absolute as written, relative to the
// including file's directory otherwise.
func resolve(from, name string) string {
	if path.IsAbs(name) {
		return path.Clean(name)
	}
	return path.Join(path.Dir(from), name)
}

// unwrapPath drops the path an fs.PathError repeats.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// xSpec is what xinetd's attribute tables say of one attribute: how many
// values it takes (-1 any number) and whether it is a list that +=
// and -= modify.
type xSpec struct {
	values     int
	modifiable bool
	inDefaults bool
}

var xinetdAttrs = map[string]xSpec{
	"socket_type": {1, false, false}, "protocol": {1, false, false}, "wait": {1, false, false},
	"user": {1, false, false}, "group": {1, false, false}, "server": {1, false, false},
	"server_args": {-1, false, false}, "instances": {1, false, true},
	"log_on_success": {-1, true, true}, "log_on_failure": {-1, true, true}, "log_type": {-1, false, true},
	"only_from": {-1, true, true}, "no_access": {-1, true, true}, "access_times": {-1, false, false},
	"type": {-1, false, false}, "rpc_version": {1, false, false}, "rpc_number": {1, false, false},
	"id": {1, false, false}, "env": {-1, true, false}, "port": {1, false, false},
	"passenv": {-1, true, true}, "flags": {-1, false, false}, "nice": {1, false, false},
	"redirect": {2, false, false}, "banner": {1, false, true}, "bind": {1, false, true},
	"interface": {1, false, true}, "per_source": {1, false, true}, "groups": {1, false, true},
	"banner_success": {1, false, true}, "banner_fail": {1, false, true}, "cps": {2, false, true},
	"disable": {1, false, false}, "max_load": {1, false, true}, "rlimit_as": {1, false, false},
	"rlimit_cpu": {1, false, false}, "rlimit_data": {1, false, false}, "rlimit_files": {1, false, false},
	"rlimit_rss": {1, false, false}, "rlimit_stack": {1, false, false}, "v6only": {1, false, true},
	"deny_time": {1, false, false}, "umask": {1, false, true}, "libwrap": {1, false, false},
	"mdns": {1, false, false},
	// Only in defaults: lists of service ids.
	"disabled": {-1, true, true}, "enabled": {-1, true, true},
}

// attrKey is the attribute an attribute line sets: interface is bind.
func attrKey(name string) string {
	if name == "interface" {
		return "bind"
	}
	return name
}

// xItem is one value of a list attribute, with where it was written.
type xItem struct {
	value string
	file  string
	line  int
}

// xsvc is a service entry with the defaults xinetd copied into it.
type xsvc struct {
	e       xEntry
	scalars map[string]xAttr   // first one wins, as in xinetd
	lists   map[string][]xItem // only_from, no_access, passenv, env
	listSet map[string]xAttr   // the line that last set each list
	ownList map[string]xAttr   // the same, for lines of the entry itself
	// refused holds why xinetd would not run the service (an attribute
	// it could not parse, a missing one...); the import disables it.
	refused []string
}

// xconv converts entries into superd services.
type xconv struct {
	w     *warnings
	db    serviceDB
	names namer

	scalarDefaults map[string]xAttr
	listDefaults   map[string][]xItem
	listDefaultSet map[string]xAttr
	defaultsFiles  map[string]bool
	disabledIDs    []xItem
	enabledIDs     []xItem
	enabledSet     bool
	zeroDefaults   []string // instances or per_source, when defaults say 0

	svcs []*xsvc
}

func (c *xconv) warn(file string, line int, format string, args ...any) {
	c.w.add(file, line, format, args...)
}

func (c *xconv) convert(entries []xEntry) ([]*service, *defaultsSection) {
	c.defaultsFiles = map[string]bool{}
	c.listDefaultSet = map[string]xAttr{}
	for _, e := range entries {
		switch e.kind {
		case "defaults":
			if c.defaultsFiles[e.file] {
				c.warn(e.file, e.line, "defaults: a second defaults entry in this file; xinetd ignores it")
				continue
			}
			c.defaultsFiles[e.file] = true
			c.readDefaults(e)
		case "service":
			c.readService(e)
		}
	}
	defs := c.defaults()
	var out []*service
	for _, x := range c.svcs {
		if s := c.service(x); s != nil {
			out = append(out, s)
		}
	}
	resolveConflicts(out, c.w, "xinetd runs only the first service of an address")
	return out, defs
}

// readDefaults records a defaults entry. Lists accumulate ('=' adds, as
// xinetd reads it in defaults); other attributes keep their first value.
func (c *xconv) readDefaults(e xEntry) {
	if e.inlineBrace {
		c.warn(e.file, e.line, "defaults: '{' must be on a line of its own; xinetd does not read this entry, imported anyway")
	}
	for _, a := range e.attrs {
		spec, known := xinetdAttrs[a.name]
		switch {
		case !known:
			c.warn(a.file, a.line, "defaults: %s: unknown attribute; xinetd ignores it", a.name)
			continue
		case !spec.inDefaults:
			c.warn(a.file, a.line, "defaults: %s: not allowed in defaults; xinetd ignores it", a.name)
			continue
		}
		if a.hash {
			c.warn(a.file, a.line, "defaults: %s: '#' starts a comment only at the beginning of a line; xinetd takes %s as values", a.name, strings.Join(a.values, " "))
		}
		switch a.name {
		case "log_type", "log_on_success", "log_on_failure":
			c.warn(a.file, a.line, "defaults: %s: not converted: superd logs every activation and every exit itself (service, remote address, pid, exit status, duration)", a.name)
			continue
		case "banner", "banner_success", "banner_fail":
			c.warn(a.file, a.line, "defaults: %s: not converted: superd sends no banners", a.name)
			continue
		case "max_load":
			c.warn(a.file, a.line, "defaults: max_load: not converted: superd does not refuse connections by load average")
			continue
		case "disabled":
			for _, v := range a.values {
				c.disabledIDs = append(c.disabledIDs, xItem{v, a.file, a.line})
			}
			continue
		case "enabled":
			c.enabledSet = true
			for _, v := range a.values {
				c.enabledIDs = append(c.enabledIDs, xItem{v, a.file, a.line})
			}
			continue
		}
		if spec.modifiable {
			op := a.op
			if op == "=" {
				op = "+="
			}
			c.listDefaults[a.name] = applyList(a.name, c.listDefaults[a.name], op, a)
			c.listDefaultSet[a.name] = a
			continue
		}
		key := attrKey(a.name)
		if first, dup := c.scalarDefaults[key]; dup {
			c.warn(a.file, a.line, "defaults: %s: set again; xinetd keeps the first (%s:%d)", a.name, first.file, first.line)
			continue
		}
		if a.op != "=" {
			c.warn(a.file, a.line, "defaults: %s: operator %s cannot be used for it; xinetd ignores the line", a.name, a.op)
			continue
		}
		if spec.values > 0 && len(a.values) != spec.values {
			c.warn(a.file, a.line, "defaults: %s: takes %d value(s), got %d; xinetd ignores the line", a.name, spec.values, len(a.values))
			continue
		}
		c.scalarDefaults[key] = a
	}
}

// applyList applies one +=, -= or = line to a list attribute.
func applyList(name string, list []xItem, op string, a xAttr) []xItem {
	list = slices.Clone(list)
	switch op {
	case "=":
		list = nil
		fallthrough
	case "+=":
		for _, v := range a.values {
			if name == "passenv" && slices.ContainsFunc(list, func(i xItem) bool { return i.value == v }) {
				continue
			}
			list = append(list, xItem{v, a.file, a.line})
		}
	case "-=":
		for _, v := range a.values {
			list = slices.DeleteFunc(list, func(i xItem) bool { return sameListValue(name, i.value, v) })
		}
	}
	return list
}

// sameListValue says whether -= v removes item: addresses compare by what
// they match, as xinetd's xremove does.
func sameListValue(name, item, v string) bool {
	if name != "only_from" && name != "no_access" {
		return item == v
	}
	p1, f1 := parseXinetdAddr(item)
	p2, f2 := parseXinetdAddr(v)
	if f1 != formPrefixes || f2 != formPrefixes {
		return strings.EqualFold(item, v)
	}
	return slices.Equal(p1, p2)
}

// readService records a service entry: the defaults' lists are copied in
// first, as xinetd does when it meets the entry, so that += and -= modify
// them and later defaults do not reach it.
func (c *xconv) readService(e xEntry) {
	x := &xsvc{e: e, scalars: map[string]xAttr{}, lists: map[string][]xItem{}, listSet: map[string]xAttr{}, ownList: map[string]xAttr{}}
	for _, name := range []string{"only_from", "no_access", "passenv"} {
		if a, ok := c.listDefaultSet[name]; ok {
			x.lists[name] = slices.Clone(c.listDefaults[name])
			x.listSet[name] = a
		}
	}
	id := e.name
	for _, a := range e.attrs {
		if a.name == "id" && len(a.values) == 1 {
			id = a.values[0]
			break
		}
	}

	for _, a := range e.attrs {
		spec, known := xinetdAttrs[a.name]
		if !known || a.name == "disabled" || a.name == "enabled" {
			c.warn(a.file, a.line, "%s: %s: unknown attribute; xinetd ignores it", id, a.name)
			continue
		}
		if a.hash {
			c.warn(a.file, a.line, "%s: %s: '#' starts a comment only at the beginning of a line; xinetd takes %s as values", id, a.name, strings.Join(a.values, " "))
		}
		if spec.modifiable {
			switch {
			case a.name == "log_on_success" || a.name == "log_on_failure":
				c.warn(a.file, a.line, "%s: %s: not converted: superd logs every activation and every exit itself (service, remote address, pid, exit status, duration)", id, a.name)
			case a.name == "env" && a.op == "-=":
				c.warn(a.file, a.line, "%s: env: operator -= is not supported for env; xinetd disables the service for it", id)
				x.refused = append(x.refused, "env -= is an error to xinetd")
			default:
				x.lists[a.name] = applyList(a.name, x.lists[a.name], a.op, a)
				x.listSet[a.name] = a
				x.ownList[a.name] = a
			}
			continue
		}
		key := attrKey(a.name)
		if first, dup := x.scalars[key]; dup {
			c.warn(a.file, a.line, "%s: %s: set again; xinetd keeps the first (line %d)", id, a.name, first.line)
			continue
		}
		if a.op != "=" {
			c.warn(a.file, a.line, "%s: %s: operator %s cannot be used for it; xinetd ignores the line", id, a.name, a.op)
			continue
		}
		if spec.values > 0 && len(a.values) != spec.values {
			c.warn(a.file, a.line, "%s: %s: takes %d value(s), got %d; xinetd ignores the line", id, a.name, spec.values, len(a.values))
			continue
		}
		x.scalars[key] = a
	}
	c.svcs = append(c.svcs, x)
}

// defaults builds superd's defaults: xinetd's built-in limits, replaced by
// its defaults entry where that sets them.
func (c *xconv) defaults() *defaultsSection {
	d := &defaultsSection{}
	d.set("max_instances", 0, "xinetd starts any number of servers of a service (instances = UNLIMITED);\nsuperd's own default is 256: drop this line to use it")
	d.set("rate_limit", &rateLimit{max: 50, per: "1s", pause: "10s"}, "xinetd's built-in cps = 50 10: more than 50 connections in a second\npause a service for 10 seconds")
	for _, l := range []struct{ attr, key string }{{"instances", "max_instances"}, {"per_source", "max_per_source"}} {
		a, ok := c.scalarDefaults[l.attr]
		if !ok {
			continue
		}
		n, ok := instancesValue(a.values[0])
		switch {
		case !ok:
			c.warn(a.file, a.line, "defaults: %s: %q is not a number or UNLIMITED; xinetd would exit", l.attr, a.values[0])
		case a.values[0] != "UNLIMITED" && n == 0:
			// Each service that does not set its own starts nothing:
			// service() disables them.
			c.warn(a.file, a.line, "defaults: %s = 0: xinetd starts no server of a service that does not set its own", l.attr)
			c.zeroDefaults = append(c.zeroDefaults, l.attr)
		default:
			d.set(l.key, n, fmt.Sprintf("from %s:%d (%s = %s)", a.file, a.line, l.attr, a.values[0]))
		}
	}
	if a, ok := c.scalarDefaults["cps"]; ok {
		if rl, msg := cpsValue(a.values); rl != nil {
			d.set("rate_limit", rl, fmt.Sprintf("from %s:%d (cps = %s)", a.file, a.line, strings.Join(a.values, " ")))
			if msg != "" {
				c.warn(a.file, a.line, "defaults: cps: %s", msg)
			}
		} else {
			c.warn(a.file, a.line, "defaults: cps: %s", msg)
		}
	}
	if a, ok := c.scalarDefaults["umask"]; ok {
		if m, ok := umaskValue(a.values[0]); ok {
			d.set("umask", m, fmt.Sprintf("from %s:%d (umask = %s)", a.file, a.line, a.values[0]))
		} else {
			c.warn(a.file, a.line, "defaults: umask: %q is not an octal number up to 0777; xinetd would exit", a.values[0])
		}
	}
	return d
}

// instancesValue reads a number or UNLIMITED (as 0, superd's unlimited).
func instancesValue(s string) (int, bool) {
	if s == "UNLIMITED" {
		return 0, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 1<<31-1 {
		return 0, false
	}
	if n == 0 {
		return 0, true
	}
	return n, true
}

// cpsValue converts cps = N WAIT; the message explains a change or, with
// a nil limit, why there is none.
func cpsValue(v []string) (*rateLimit, string) {
	n, err1 := strconv.ParseUint(v[0], 10, 31)
	wait, err2 := strconv.ParseUint(v[1], 10, 31)
	switch {
	case err1 != nil || err2 != nil:
		return nil, fmt.Sprintf("%q is not two numbers (connections per second, seconds to wait)", strings.Join(v, " "))
	case n == 0:
		return nil, "0 connections per second: not converted (superd's rate_limit needs at least 1)"
	case wait == 0:
		return &rateLimit{max: int(n), per: "1s"}, "a pause of 0 seconds is not possible: superd pauses for 1s"
	}
	return &rateLimit{max: int(n), per: "1s", pause: strconv.FormatUint(wait, 10) + "s"}, ""
}

// umaskValue reads an octal umask as superd writes it ("022").
func umaskValue(s string) (string, bool) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 || s == "" || s[0] == '+' {
		return "", false
	}
	return fmt.Sprintf("%03o", v), true
}

// The internal services of both super-servers that superd has.
var internals = map[string]bool{"echo": true, "discard": true, "daytime": true, "time": true, "chargen": true}

// xs is one service being converted.
type xs struct {
	c    *xconv
	x    *xsvc
	id   string
	s    *service
	used map[string]bool
	// refusals are the reasons xinetd would not run the service; they
	// are reported once the service is converted, or skipped.
	refusals []Warning
}

// attr returns the service's own scalar attribute, or the default's for
// those that xinetd fills in from defaults, and marks it converted.
func (t *xs) attr(key string) (xAttr, bool) {
	t.used[key] = true
	if a, ok := t.x.scalars[key]; ok {
		return a, true
	}
	switch key {
	case "bind", "groups", "v6only":
		a, ok := t.c.scalarDefaults[key]
		return a, ok
	}
	return xAttr{}, false
}

func (t *xs) warn(a xAttr, format string, args ...any) {
	t.c.warn(a.file, a.line, "%s: %s: %s", t.id, a.name, fmt.Sprintf(format, args...))
}

// refuse notes an attribute xinetd cannot parse: it disables the service.
func (t *xs) refuse(a xAttr, format string, args ...any) {
	t.refuseAt(a.file, a.line, a.name, fmt.Sprintf(format, args...)+"; xinetd disables the service for it")
}

// refuseAt notes why xinetd would not run the service.
func (t *xs) refuseAt(file string, line int, attr, msg string) {
	t.refusals = append(t.refusals, Warning{File: file, Line: line, Msg: t.id + ": " + attr + ": " + msg})
	t.x.refused = append(t.x.refused, attr)
}

// flush reports the refusals, saying what the import made of them.
func (t *xs) flush(converted bool) {
	for _, r := range t.refusals {
		if converted {
			r.Msg += ": imported disabled"
		}
		t.c.warn(r.File, r.Line, "%s", r.Msg)
	}
	t.refusals = nil
}

// skip reports why the service is not converted at all.
func (t *xs) skip(format string, args ...any) *service {
	t.flush(false)
	t.c.warn(t.x.e.file, t.x.e.line, "%s: not converted: %s", t.id, fmt.Sprintf(format, args...))
	return nil
}

// service converts one xinetd service, or returns nil (with a warning)
// when superd cannot serve it at all.
func (c *xconv) service(x *xsvc) *service {
	t := &xs{c: c, x: x, id: x.e.name, used: map[string]bool{}}
	if a, ok := t.attr("id"); ok {
		t.id = a.values[0]
	}
	t.s = &service{file: x.e.file, line: x.e.line}
	s := t.s
	if x.e.inlineBrace {
		t.refuseAt(x.e.file, x.e.line, "service", "'{' must be on a line of its own; xinetd skips this entry")
	}
	if t.id != x.e.name {
		s.note = "(service " + x.e.name + ", id " + t.id + ")"
	}

	types := map[string]bool{}
	if a, ok := t.attr("type"); ok {
		if len(a.values) == 0 {
			t.refuse(a, "no value")
		}
		for _, v := range a.values {
			switch v {
			case "INTERNAL", "UNLISTED", "RPC", "TCPMUX", "TCPMUXPLUS", "SPECIAL":
				types[v] = true
			default:
				t.refuse(a, "unknown service type %q", v)
			}
		}
	}
	flags := map[string]bool{}
	flagsAttr, haveFlags := t.attr("flags")
	for _, v := range flagsAttr.values {
		switch v {
		case "REUSE", "NORETRY", "NOLIBWRAP", "INTERCEPT", "IDONLY", "LABELED",
			"IPv4", "IPv6", "NODELAY", "KEEPALIVE", "NAMEINARGS", "SENSOR", "DISABLE":
			flags[v] = true
		}
	}
	switch {
	case types["RPC"]:
		return t.skip("RPC services (type = RPC) need a portmapper registration, which superd does not do")
	case types["TCPMUX"] || types["TCPMUXPLUS"]:
		return t.skip("TCPMUX services (RFC 1078) are not supported by superd")
	case flags["SENSOR"]:
		return t.skip("flags = SENSOR: superd has no sensor that bans the addresses that connect")
	case types["SPECIAL"]:
		return t.skip("type = SPECIAL: xinetd's own special services have no superd equivalent")
	case types["INTERNAL"] && !internals[x.e.name]:
		return t.skip("internal service %q: superd's internal services are echo, discard, daytime, time and chargen", x.e.name)
	}

	if haveFlags {
		a := flagsAttr
		for _, v := range a.values {
			switch v {
			case "REUSE", "NORETRY", "NOLIBWRAP":
				// REUSE: superd always sets SO_REUSEADDR. NORETRY: superd
				// never retries a failed fork. NOLIBWRAP: superd never
				// reads TCP wrappers rules.
			case "INTERCEPT":
				t.warn(a, "INTERCEPT not converted: superd checks allow and deny on every connection itself before it starts anything, and in wait mode not at all")
			case "IDONLY":
				t.warn(a, "IDONLY not converted: superd does not query the client's ident (RFC 1413) server")
			case "LABELED":
				t.warn(a, "LABELED not converted: superd does not set SELinux contexts")
			case "IPv4", "IPv6", "NODELAY", "KEEPALIVE", "NAMEINARGS", "SENSOR", "DISABLE":
			default:
				t.refuse(a, "unknown flag %q", v)
			}
		}
	}

	// What and where: socket type, protocol, port, address.
	kind, proto := t.socket()
	if kind == "" {
		return nil
	}
	wait := t.wait(kind, types["INTERNAL"])
	port := t.port(types["UNLISTED"], proto)
	if port == 0 {
		return nil
	}
	if !t.listen(proto, port, flags) {
		return nil
	}
	switch {
	case kind == "stream" && wait:
		s.mode = "wait"
	case kind == "stream":
		s.mode = "accept"
	}

	// What runs.
	var ok bool
	if types["INTERNAL"] {
		ok = t.internal(kind, wait)
	} else if a, isRedirect := t.attr("redirect"); isRedirect {
		ok = t.redirect(a, kind, wait, flags)
	} else {
		ok = t.exec(flags)
	}
	if !ok {
		return nil
	}
	if s.exec != nil {
		t.process()
	} else {
		t.noProcess()
	}
	if kind == "stream" {
		if flags["NODELAY"] {
			s.setSocket("no_delay", true)
		}
		if flags["KEEPALIVE"] {
			s.setSocket("keepalive", true)
		}
	} else if a, ok := t.x.scalars["flags"]; ok && (flags["NODELAY"] || flags["KEEPALIVE"]) {
		t.warn(a, "NODELAY and KEEPALIVE apply to TCP only and have no effect on a datagram socket, as in xinetd")
	}

	// An exec service in wait mode has one child at a time, which reads
	// the socket itself: superd sees no client to count or check.
	inWait := s.exec != nil && (kind == "dgram" || wait)
	t.limits(inWait)
	t.access(inWait)
	t.ignored()

	// Disabled: written, refused, or listed in defaults.
	if a, ok := t.attr("disable"); ok {
		switch a.values[0] {
		case "yes":
			s.disable("disable = yes")
		case "no":
		default:
			t.refuse(a, "%q is not yes or no", a.values[0])
		}
	}
	if flags["DISABLE"] {
		s.disable("flags = DISABLE")
	}
	for _, it := range c.disabledIDs {
		if it.value == t.id {
			s.disable(fmt.Sprintf("in defaults' disabled (%s:%d)", it.file, it.line))
		}
	}
	for _, attr := range c.zeroDefaults {
		if _, own := x.scalars[attr]; !own {
			s.disable(fmt.Sprintf("%s = 0 in defaults", attr))
		}
	}
	if c.enabledSet && !slices.ContainsFunc(c.enabledIDs, func(i xItem) bool { return i.value == t.id }) {
		s.disable("not in defaults' enabled")
	}
	t.flush(true)
	if len(x.refused) > 0 {
		s.disable("xinetd would not run it: see the import's warnings")
	}
	// Whatever was not read above is named, so that nothing goes
	// unmentioned.
	var rest []xAttr
	for key, a := range x.scalars {
		if !t.used[key] {
			rest = append(rest, a)
		}
	}
	slices.SortFunc(rest, func(a, b xAttr) int { return a.line - b.line })
	for _, a := range rest {
		t.warn(a, "not converted")
	}

	base := sanitizeName(t.id)
	if base != t.id {
		c.warn(x.e.file, x.e.line, "%s: %q is not a superd service name ([a-z0-9][a-z0-9_.-]*): imported as %s", t.id, t.id, base)
	}
	s.name = c.names.name(base, proto)
	if s.name != base {
		c.warn(x.e.file, x.e.line, "%s: another service is named %s already: imported as %s", t.id, base, s.name)
	}
	return s
}

// socket reads socket_type and protocol, each filled in from the other as
// xinetd does.
func (t *xs) socket() (kind, proto string) {
	st, haveST := t.attr("socket_type")
	pr, havePR := t.attr("protocol")
	if haveST {
		switch kind = st.values[0]; kind {
		case "stream", "dgram":
		case "raw", "seqpacket", "rdm":
			t.skip("socket_type = %s: superd serves TCP and UDP (stream and dgram) sockets on IP", kind)
			return "", ""
		default:
			t.refuse(st, "unknown socket type %q", kind)
			kind = ""
		}
	}
	if havePR {
		switch proto = pr.values[0]; proto {
		case "tcp", "udp":
		default:
			t.skip("protocol = %s: superd serves tcp and udp", proto)
			return "", ""
		}
	}
	switch {
	case kind == "" && proto == "":
		t.skip("neither socket_type nor protocol is set (xinetd needs one of them)")
		return "", ""
	case kind == "":
		kind = map[string]string{"tcp": "stream", "udp": "dgram"}[proto]
	case proto == "":
		proto = map[string]string{"stream": "tcp", "dgram": "udp"}[kind]
	case kind == "stream" && proto != "tcp" || kind == "dgram" && proto != "udp":
		t.skip("socket_type = %s does not go with protocol = %s", kind, proto)
		return "", ""
	}
	return kind, proto
}

// wait reads wait. When it is missing or wrong xinetd refuses the
// service, and superd's mode for the socket type is taken.
func (t *xs) wait(kind string, internal bool) bool {
	a, have := t.attr("wait")
	switch {
	case !have:
		t.refuseAt(t.x.e.file, t.x.e.line, "wait", "missing; xinetd refuses a service without it")
	case a.values[0] == "yes":
		return true
	case a.values[0] == "no":
		if kind == "dgram" && !internal {
			t.warn(a, "no on a datagram socket: superd serves datagram sockets in wait mode only (the program gets the socket itself), where xinetd started one program per datagram")
		}
		return false
	default:
		t.refuse(a, "%q is not yes or no", a.values[0])
	}
	return kind == "dgram"
}

// port finds the service's port: the port attribute, checked against
// /etc/services for a listed service as xinetd does, else the service
// name looked up there.
func (t *xs) port(unlisted bool, proto string) int {
	name := t.x.e.name
	listed, inDB := t.c.db.port(name, proto)
	a, have := t.attr("port")
	if have {
		n, err := strconv.Atoi(a.values[0])
		switch {
		case err != nil || n < 0 || n > 65535:
			t.refuse(a, "%q is not a port number", a.values[0])
			have = false
		case n == 0:
			t.skip("port = 0: superd needs a port from 1 to 65535")
			return 0
		case !unlisted && inDB && n != listed:
			t.refuse(a, "%s/%s is port %d in %s, and xinetd refuses another port for a listed service (use type = UNLISTED)", name, proto, listed, servicesFile)
			return n
		case !unlisted && !inDB:
			t.refuse(a, "%s/%s is not in %s, and xinetd refuses a service neither listed there nor UNLISTED", name, proto, servicesFile)
			return n
		default:
			return n
		}
	}
	switch {
	case unlisted:
		t.skip("type = UNLISTED needs a port attribute")
		return 0
	case !inDB:
		t.skip("no port attribute and no %s/%s in %s", name, proto, servicesFile)
		return 0
	}
	return listed
}

// yesNo reads a yes/no attribute; absent is no, and anything else refuses
// the service as xinetd does.
func (t *xs) yesNo(name string) bool {
	a, ok := t.attr(name)
	if !ok {
		return false
	}
	switch a.values[0] {
	case "yes":
		return true
	case "no":
	default:
		t.refuse(a, "%q is not yes or no", a.values[0])
	}
	return false
}

// listen builds the listen address from bind (or interface), the IPv4
// and IPv6 flags and v6only. xinetd listens on IPv6 unless told IPv4, on
// a dual-stack socket unless v6only = yes.
func (t *xs) listen(proto string, port int, flags map[string]bool) bool {
	s := t.s
	v6only := t.yesNo("v6only")
	v4 := flags["IPv4"] && !flags["IPv6"]
	var addr string
	if a, ok := t.attr("bind"); ok {
		host := a.values[0]
		ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
		switch {
		case err != nil && a.name == "interface" && validIfName(host):
			t.warn(a, "%q is not an address (xinetd takes interface as a synonym of bind and would look it up as a host name); it looks like an interface name: imported as socket.bind_to_device", host)
			s.setSocket("bind_to_device", host)
		case err != nil:
			t.skip("%s = %s is not an IP address: superd binds addresses only, with no DNS at start; write the address", a.name, host)
			return false
		case linkLocalNoZone(ip):
			t.skip("%s = %s is a link-local address without a zone, which cannot be bound: write it as %s%%INTERFACE", a.name, host, ip)
			return false
		case ip.Is4In6():
			ip = ip.Unmap()
			fallthrough
		default:
			if ip.Is6() && v4 {
				t.warn(a, "flags = IPv4 does not apply to IPv6 address %s; xinetd fails to bind it: imported on IPv6", ip)
			}
			if ip.Is4() && v6only {
				t.warn(a, "v6only = yes has no effect on IPv4 address %s", ip)
			}
			switch {
			case ip == netip.IPv6Unspecified() && v6only:
				addr = formatListen(proto+"6", netip.Addr{}, port)
			default:
				addr = formatListen(proto, ip, port)
			}
		}
	}
	if addr == "" {
		switch {
		case v4:
			if v6only {
				if a, ok := t.attr("v6only"); ok {
					t.warn(a, "v6only = yes has no effect with flags = IPv4")
				}
			}
			addr = formatListen(proto+"4", netip.Addr{}, port)
		case v6only:
			addr = formatListen(proto+"6", netip.Addr{}, port)
		default:
			addr = formatListen(proto, netip.Addr{}, port)
		}
	}
	if _, err := listener.ParseAddress(addr); err != nil {
		t.skip("cannot listen on %s: %v", addr, err)
		return false
	}
	s.listen = []string{addr}
	return true
}

// linkLocalNoZone says whether ip needs a zone to be bound.
func linkLocalNoZone(ip netip.Addr) bool {
	return ip.Is6() && (ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast()) && ip.Zone() == ""
}

// validIfName says whether s can be a Linux interface name.
func validIfName(s string) bool {
	return s != "" && len(s) <= 15 && s != "." && s != ".." && !strings.ContainsAny(s, "/: \t\n\v\f\r")
}

func (t *xs) redirect(a xAttr, kind string, wait bool, flags map[string]bool) bool {
	s := t.s
	host, port := a.values[0], a.values[1]
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 {
		p, ok := t.c.db.port(port, "tcp")
		if !ok {
			t.refuse(a, "port %q is neither a number nor a tcp service of %s", port, servicesFile)
			return t.skipRedirect()
		}
		n = p
	}
	if n > 65535 {
		t.refuse(a, "port %d is out of range", n)
		return t.skipRedirect()
	}
	switch {
	case kind != "stream":
		t.refuse(a, "xinetd redirects TCP services only")
		return t.skipRedirect()
	case wait:
		t.refuse(a, "xinetd redirects services with wait = no only")
	case flags["NAMEINARGS"]:
		t.refuse(a, "xinetd refuses NAMEINARGS on a redirected service")
	}
	var hp string
	if ip, err := netip.ParseAddr(host); err == nil {
		hp = netip.AddrPortFrom(ip, uint16(n)).String()
	} else if config.ValidHostname(host) {
		hp = fmt.Sprintf("%s:%d", host, n)
		t.warn(a, "host name %s: xinetd looked it up once at start; superd resolves it at run time", host)
	} else {
		t.refuse(a, "%q is not a host", host)
		return t.skipRedirect()
	}
	s.redirect = hp
	s.mode = ""
	for _, key := range []string{"server", "server_args"} {
		if sa, ok := t.attr(key); ok {
			t.warn(sa, "ignored: redirect takes priority, as in xinetd")
		}
	}
	return true
}

func (t *xs) skipRedirect() bool {
	t.skip("the redirect cannot be converted")
	return false
}

func (t *xs) internal(kind string, wait bool) bool {
	s := t.s
	s.internal = t.x.e.name
	if kind == "stream" && wait {
		if a, ok := t.attr("wait"); ok {
			t.warn(a, "internal stream services run in accept mode in superd")
		}
	}
	s.mode = ""
	for _, key := range []string{"server", "server_args", "redirect"} {
		if sa, ok := t.attr(key); ok {
			t.warn(sa, "ignored for an internal service, as in xinetd")
		}
	}
	return true
}

// exec builds the program and its arguments: server_args split on blanks;
// with NAMEINARGS the first of them is argv[0].
func (t *xs) exec(flags map[string]bool) bool {
	s := t.s
	a, ok := t.attr("server")
	if !ok {
		t.skip("no server (the program to run) and no redirect")
		return false
	}
	server := a.values[0]
	if !path.IsAbs(server) {
		t.skip("server = %s is not an absolute path", server)
		return false
	}
	s.exec = []string{server}
	args, haveArgs := t.attr("server_args")
	switch {
	case flags["NAMEINARGS"] && (!haveArgs || len(args.values) == 0):
		t.refuseAt(t.x.e.file, t.x.e.line, "flags", "NAMEINARGS needs server_args; xinetd refuses the service")
	case flags["NAMEINARGS"]:
		if args.values[0] != server {
			s.argv0 = args.values[0]
		}
		s.exec = append(s.exec, args.values[1:]...)
	case haveArgs:
		s.exec = append(s.exec, args.values...)
	}
	return true
}

// process converts what shapes the child: user, groups, environment,
// umask, nice and resource limits.
func (t *xs) process() {
	s := t.s
	user, haveUser := t.attr("user")
	group, haveGroup := t.attr("group")
	switch {
	case haveUser && validAccount(user.values[0]):
		s.user = user.values[0]
	case haveUser:
		t.refuse(user, "%q is not a user name or id", user.values[0])
		s.user = "root"
	default:
		s.user, s.userComment = "root", "xinetd's entry has no user: root, written as superd requires"
		t.refuseAt(t.x.e.file, t.x.e.line, "user", "missing; xinetd refuses to start a server without one (choose the user, then enable the service)")
	}
	if haveGroup {
		if validAccount(group.values[0]) {
			s.group = group.values[0]
		} else {
			t.refuse(group, "%q is not a group name or id", group.values[0])
		}
	}
	if s.group == "" && digitsOnly(s.user) {
		// xinetd takes a numeric user's group id to be its user id.
		s.group = s.user
	}
	// xinetd gives the server no supplementary groups unless groups =
	// yes, which is superd's default (the user's groups).
	groupsYes := t.yesNo("groups")
	if !groupsYes {
		s.groups, s.groupsSet = []string{}, true
	}

	if _, ok := t.x.listSet["env"]; ok {
		env := map[string]string{}
		for _, it := range t.x.lists["env"] {
			name, value, found := strings.Cut(it.value, "=")
			switch {
			case !found:
				t.refuse(xAttr{name: "env", file: it.file, line: it.line}, "%q has no '='", it.value)
			case !validEnvName(name):
				t.c.warn(it.file, it.line, "%s: env: %q is not a variable name superd accepts (letters, digits, '_'); not converted", t.id, name)
			case reservedEnv[name]:
				t.c.warn(it.file, it.line, "%s: env: %s is set by superd itself; not converted", t.id, name)
			default:
				env[name] = value
			}
		}
		if len(env) > 0 {
			s.env = env
		}
	}
	if _, ok := t.x.listSet["passenv"]; ok {
		s.passEnv = []string{}
		for _, it := range t.x.lists["passenv"] {
			switch {
			case !validEnvName(it.value):
				t.c.warn(it.file, it.line, "%s: passenv: %q is not a variable name superd accepts; not converted", t.id, it.value)
			case reservedEnv[it.value]:
				t.c.warn(it.file, it.line, "%s: passenv: %s is set by superd itself; not converted", t.id, it.value)
			case !slices.Contains(s.passEnv, it.value):
				s.passEnv = append(s.passEnv, it.value)
			}
		}
		if len(s.passEnv) == 0 {
			s.passEnv = nil // superd passes nothing by default
		}
	}
	if a, ok := t.attr("umask"); ok {
		if m, ok := umaskValue(a.values[0]); ok {
			s.umask = m
		} else {
			t.refuse(a, "%q is not an octal number up to 0777", a.values[0])
		}
	}
	if a, ok := t.attr("nice"); ok {
		n, err := strconv.Atoi(a.values[0])
		switch {
		case err != nil:
			t.refuse(a, "%q is not a number", a.values[0])
		case n < -20 || n > 19:
			clamped := min(max(n, -20), 19)
			t.warn(a, "%d is outside -20..19; the kernel clamps it to %d, as written", n, clamped)
			s.nice = &clamped
		default:
			s.nice = &n
		}
	}
	for _, r := range []struct{ attr, key string }{
		{"rlimit_as", "as"}, {"rlimit_cpu", "cpu"}, {"rlimit_data", "data"},
		{"rlimit_files", "nofile"}, {"rlimit_rss", ""}, {"rlimit_stack", "stack"},
	} {
		a, ok := t.attr(r.attr)
		if !ok {
			continue
		}
		v := a.values[0]
		if r.key == "" {
			t.warn(a, "not converted: superd has no rlimit for the resident set size, which Linux does not enforce")
			continue
		}
		if v == "UNLIMITED" {
			if r.key == "nofile" {
				t.warn(a, "UNLIMITED not converted: the kernel refuses an unlimited number of open files (xinetd's setrlimit failed too)")
				continue
			}
			s.rlimits = append(s.rlimits, keyValue{r.key, "unlimited"})
			continue
		}
		n, ok := rlimitValue(v, r.key != "cpu")
		switch {
		case !ok:
			t.refuse(a, "%q is not a number%s or UNLIMITED", v, map[bool]string{true: " (with K or M)"}[r.key != "cpu"])
		case n == 0:
			t.warn(a, "0 means no limit to xinetd: not converted")
		default:
			s.rlimits = append(s.rlimits, keyValue{r.key, strconv.FormatUint(n, 10)})
		}
	}
}

// rlimitValue reads a number with an optional K or M (powers of 1024).
func rlimitValue(s string, sizes bool) (uint64, bool) {
	shift := 0
	if sizes && s != "" {
		switch s[len(s)-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		}
		if shift > 0 {
			s = s[:len(s)-1]
		}
	}
	if !digitsOnly(s) {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 63)
	if err != nil || n > (1<<63-1)>>shift {
		return 0, false
	}
	return n << shift, true
}

// noProcess warns about what shapes a child on services superd serves
// itself. user = root and group = root say nothing more than superd does.
func (t *xs) noProcess() {
	for _, key := range []string{"user", "group"} {
		if a, ok := t.attr(key); ok && a.values[0] != "root" && a.values[0] != "0" {
			t.warn(a, "not converted: superd serves this service itself, without a child process")
		}
	}
	for _, key := range []string{"groups", "umask", "nice", "rlimit_as", "rlimit_cpu", "rlimit_data", "rlimit_files", "rlimit_rss", "rlimit_stack"} {
		if a, ok := t.x.scalars[key]; ok {
			t.used[key] = true
			t.warn(a, "not converted: superd serves this service itself, without a child process")
		}
	}
	for _, key := range []string{"env", "passenv"} {
		if a, ok := t.x.ownList[key]; ok {
			t.warn(a, "not converted: superd serves this service itself, without a child process")
		}
	}
}

// limits converts instances, per_source and cps. inWait is set for an exec
// service in wait mode, which has one child at a time.
func (t *xs) limits(inWait bool) {
	s := t.s
	if a, ok := t.attr("instances"); ok {
		n, ok := instancesValue(a.values[0])
		switch {
		case !ok:
			t.refuse(a, "%q is not a number or UNLIMITED", a.values[0])
		case a.values[0] == "0":
			t.warn(a, "0: xinetd starts no server at all")
			s.disable("instances = 0")
		default:
			s.maxInstances = &n
		}
	}
	if a, ok := t.attr("per_source"); ok {
		n, ok := instancesValue(a.values[0])
		switch {
		case !ok:
			t.refuse(a, "%q is not a number or UNLIMITED", a.values[0])
		case a.values[0] == "0":
			t.warn(a, "0: xinetd starts no server at all")
			s.disable("per_source = 0")
		case inWait:
			t.warn(a, "not converted: in wait mode the program serves every client itself, so superd cannot count them")
		default:
			s.maxPerSource = &n
		}
	}
	if a, ok := t.attr("cps"); ok {
		rl, msg := cpsValue(a.values)
		if rl == nil {
			t.refuse(a, "%s", msg)
		} else {
			s.rateLimit = rl
			if msg != "" {
				t.warn(a, "%s", msg)
			}
		}
	}
}

// access converts only_from, no_access and access_times. inWait is set
// for an exec service in wait mode, where superd cannot check clients.
func (t *xs) access(inWait bool) {
	s := t.s
	if inWait {
		for _, key := range []string{"only_from", "no_access"} {
			a, ok := t.x.listSet[key]
			switch {
			case !ok:
			case key == "only_from" && len(t.x.lists[key]) == 0:
				t.warn(a, "lets no client in; superd cannot check clients in wait mode: imported disabled")
				s.disable("only_from lets no client in")
			default:
				t.warn(a, "not converted: in wait mode the program reads the socket itself, so superd cannot check clients (xinetd checked only the first datagram, or nothing on a stream socket)")
			}
		}
	} else {
		t.allowDeny()
	}
	t.accessTimes()
}

// allowDeny converts only_from and no_access.
func (t *xs) allowDeny() {
	s := t.s
	allow, allowSet := t.addresses("only_from")
	deny, _ := t.addresses("no_access")
	if allowSet && len(allow) == 0 {
		// xinetd: only_from with no value (or none it can match by
		// address) lets nobody in.
		if len(t.x.lists["only_from"]) == 0 {
			t.warn(t.x.listSet["only_from"], "no value, which lets no client in: imported as deny of every address")
		} else {
			t.warn(t.x.listSet["only_from"], "no value left that superd can match, which lets no client in: imported as deny of every address")
		}
		deny = []string{"0.0.0.0/0", "::/0"}
	}
	if len(allow) > 0 {
		s.allow = allow
	}
	if len(deny) > 0 {
		s.deny = deny
	}
}

// accessTimes converts access_times.
func (t *xs) accessTimes() {
	s := t.s
	if a, ok := t.attr("access_times"); ok {
		var wins []string
		whole := false
		for _, v := range a.values {
			win, all, ok := xinetdWindow(v)
			if !ok {
				t.refuse(a, "%q is not an interval H:MM-H:MM (hours 0-23, start before end)", v)
				return
			}
			whole = whole || all
			if !all {
				wins = append(wins, win)
			}
		}
		switch {
		case len(a.values) == 0:
			t.refuse(a, "no interval")
		case !whole:
			s.accessTimes = wins
		}
	}
}

// addresses resolves only_from or no_access into allow/deny entries.
func (t *xs) addresses(key string) ([]string, bool) {
	if _, set := t.x.listSet[key]; !set {
		return nil, false
	}
	var out []string
	for _, it := range t.x.lists[key] {
		prefixes, form := parseXinetdAddr(it.value)
		switch form {
		case formPrefixes:
		case formTCPD:
			t.c.warn(it.file, it.line, "%s: %s: %s is tcpd's form, which xinetd cannot read; taken as %s", t.id, key, it.value, formatPrefix(prefixes[0]))
		case formLocalhost:
			t.c.warn(it.file, it.line, "%s: %s: host name %s taken as 127.0.0.1 and ::1", t.id, key, it.value)
		case formShort:
			t.c.warn(it.file, it.line, "%s: %s: %s is a shortened address, which xinetd reads as inet_aton(3) does (10.1 is 10.0.0.1); not converted: write it in full", t.id, key, it.value)
		case formHost, formDomain:
			what := map[addrForm]string{formHost: "host name", formDomain: "domain"}[form]
			effect := "clients from it are now refused"
			if key == "no_access" {
				effect = "clients from it are now let in"
			}
			t.c.warn(it.file, it.line, "%s: %s: %s %s not converted: superd matches addresses only (no DNS); %s", t.id, key, what, it.value, effect)
		case formZone:
			t.c.warn(it.file, it.line, "%s: %s: %s has a zone, which superd's allow and deny do not match; not converted", t.id, key, it.value)
		default:
			t.c.warn(it.file, it.line, "%s: %s: %q is not an address xinetd can read; xinetd ignores it too", t.id, key, it.value)
		}
		for _, p := range prefixes {
			f := formatPrefix(p)
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out, true
}

// ignored warns about the attributes superd has no counterpart for.
func (t *xs) ignored() {
	msgs := map[string]string{
		"log_type":       "not converted: superd logs to its own log (stderr, console or JSON)",
		"banner":         "not converted: superd sends no banners",
		"banner_success": "not converted: superd sends no banners",
		"banner_fail":    "not converted: superd sends no banners",
		"deny_time":      "not converted: superd has no SENSOR flag to ban addresses",
		"max_load":       "not converted: superd does not refuse connections by load average",
		"mdns":           "not converted: superd does not register services with mDNS",
		"libwrap":        "not converted: superd does not read TCP wrappers rules (hosts.allow, hosts.deny): write allow and deny",
		"rpc_version":    "ignored: this is not an RPC service",
		"rpc_number":     "ignored: this is not an RPC service",
	}
	keys := make([]string, 0, len(msgs))
	for k := range msgs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if a, ok := t.x.scalars[k]; ok {
			t.used[k] = true
			t.warn(a, "%s", msgs[k])
		}
	}
}

// validAccount says whether s can be a user or group superd accepts: a
// name, or a numeric id below 2^32-1.
func validAccount(s string) bool {
	if digitsOnly(s) {
		n, err := strconv.ParseUint(s, 10, 32)
		return err == nil && n < 1<<32-1
	}
	return s != ""
}

// validEnvName is superd's rule for variable names.
func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// reservedEnv are variables superd sets itself.
var reservedEnv = map[string]bool{"SUPERD_SERVICE": true, "LISTEN_FDS": true, "LISTEN_PID": true, "LISTEN_FDNAMES": true}

// sanitizeComment keeps a comment on its lines.
func sanitizeComment(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
