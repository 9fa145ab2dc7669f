package importer

import (
	"fmt"
	"math"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/superd/superd/pkg/listener"
)

// Inetd converts an inetd.conf (openbsd-inetd's format, Debian's default
// inetd) to superd YAML. It fails only when path cannot be read or a line
// is not an inetd.conf entry; everything else that cannot be converted is
// a warning. A nil fsys reads the host's files.
func Inetd(path string, fsys FS) (Result, error) {
	if fsys == nil {
		fsys = HostFS{}
	}
	data, err := fsys.ReadFile(path)
	if err != nil {
		return Result{}, err
	}
	w := newWarnings()
	w.file(path)
	entries, err := parseInetd(path, data)
	if err != nil {
		return Result{}, err
	}
	c := &iconv{w: w, db: loadServices(fsys), names: namer{}}
	svcs := c.convert(entries)
	defs := &defaultsSection{}
	defs.set("max_instances", 0, "inetd starts any number of servers of a service;\nsuperd's own default is 256: drop this line to use it")
	defs.set("rate_limit", &rateLimit{max: 256, per: "1m", pause: "10m"}, "inetd's built-in limit (-R 256): more than 256 starts of a service in a minute\npause it for ten minutes")
	wrapRules(fsys, w)
	return finish(fmt.Sprintf("converted from the inetd configuration %s", path), defs, svcs, w, path), nil
}

// iEntry is one inetd.conf entry as written.
type iEntry struct {
	file string
	line int
	// off is set for a line update-inetd(8) disabled: "#<off># entry".
	off bool
	// hosts are the local addresses from a "host:service" prefix or the
	// last "host:" line; "*" is every address.
	hosts      string
	service    string
	socketType string
	proto      string
	wait       string
	user       string
	server     string
	args       []string // from argv[0] on
}

// offPrefix marks the entries Debian's update-inetd has disabled.
const offPrefix = "#<off>#"

// parseInetd reads an inetd.conf: one entry a line, fields separated by
// blanks, '#' lines comments; a line that starts with a blank continues the
// entry above; a line "host:" alone sets the local address of the entries
// that follow (openbsd-inetd).
func parseInetd(file string, data []byte) ([]iEntry, error) {
	var out []iEntry
	defaultHost := "*"
	type pending struct {
		e      iEntry
		tokens []string
	}
	var cur *pending
	flush := func() error {
		if cur == nil {
			return nil
		}
		p := cur
		cur = nil
		e, err := interpret(p.e, p.tokens, defaultHost)
		switch {
		case err != nil && p.e.off:
			return nil // a comment to inetd all the same
		case err != nil:
			return err
		}
		out = append(out, e)
		return nil
	}
	for i, raw := range lines(data) {
		n := i + 1
		if err := checkText(file, n, raw); err != nil {
			return nil, err
		}
		l := strings.TrimSpace(raw)
		off := false
		if rest, ok := strings.CutPrefix(l, offPrefix); ok {
			l, off = strings.TrimSpace(rest), true
		}
		if l == "" || l[0] == '#' {
			continue
		}
		f := fields(l)
		if !off && (raw[0] == ' ' || raw[0] == '\t') && cur != nil {
			cur.tokens = append(cur.tokens, f...)
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		if len(f) == 1 && strings.HasSuffix(f[0], ":") && !off {
			defaultHost = strings.TrimSuffix(f[0], ":")
			if defaultHost == "" {
				return nil, &SyntaxError{File: file, Line: n, Msg: "empty host before ':'"}
			}
			continue
		}
		cur = &pending{e: iEntry{file: file, line: n, off: off}, tokens: f}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// interpret fills an entry from its fields.
func interpret(e iEntry, f []string, defaultHost string) (iEntry, error) {
	if len(f) < 6 {
		return e, &SyntaxError{File: e.file, Line: e.line, Msg: fmt.Sprintf("expected SERVICE SOCKET_TYPE PROTOCOL WAIT USER SERVER [ARGUMENTS...], got %d field(s)", len(f))}
	}
	e.hosts, e.service = defaultHost, f[0]
	if !strings.HasPrefix(f[0], "/") {
		if i := strings.LastIndexByte(f[0], ':'); i >= 0 {
			e.hosts, e.service = f[0][:i], f[0][i+1:]
			if e.hosts == "" || e.service == "" {
				return e, &SyntaxError{File: e.file, Line: e.line, Msg: fmt.Sprintf("%q: want HOST:SERVICE", f[0])}
			}
		}
	}
	e.socketType, e.proto, e.wait, e.user, e.server = f[1], f[2], f[3], f[4], f[5]
	e.args = f[6:]
	return e, nil
}

// iconv converts inetd entries.
type iconv struct {
	w     *warnings
	db    serviceDB
	names namer
}

func (c *iconv) convert(entries []iEntry) []*service {
	// inetd keeps the last of two entries for the same service, protocol
	// and address.
	last := map[string]int{}
	for i, e := range entries {
		if e.off {
			continue
		}
		key := e.service + " " + strings.SplitN(e.proto, ",", 2)[0] + " " + e.hosts
		if j, dup := last[key]; dup {
			c.w.add(e.file, e.line, "%s: replaces the entry of line %d for the same service, protocol and address, as inetd does", e.service, entries[j].line)
		}
		last[key] = i
	}
	var out []*service
	for i, e := range entries {
		if !e.off {
			key := e.service + " " + strings.SplitN(e.proto, ",", 2)[0] + " " + e.hosts
			if last[key] != i {
				continue
			}
		}
		if s := c.entry(e); s != nil {
			out = append(out, c.split(s)...)
		}
	}
	resolveConflicts(out, c.w, "inetd cannot bind the address twice either")
	return out
}

// split makes one service per address of a wait-mode exec service with
// several: inetd starts a server per address, and superd's wait mode hands
// the one child of a service its single socket on stdin and stdout.
func (c *iconv) split(s *service) []*service {
	if s.exec == nil || s.mode == "accept" || len(s.listen) < 2 {
		return []*service{s}
	}
	out := []*service{s}
	for _, l := range s.listen[1:] {
		cp := *s
		cp.listen = []string{l}
		cp.name = c.names.name(s.name, "")
		out = append(out, &cp)
	}
	s.listen = s.listen[:1]
	return out
}

// ie is one entry being converted.
type ie struct {
	c *iconv
	e iEntry
	s *service
}

func (t *ie) warn(format string, args ...any) {
	t.c.w.add(t.e.file, t.e.line, "%s: %s", t.e.service, fmt.Sprintf(format, args...))
}

func (t *ie) skip(format string, args ...any) *service {
	t.warn("not converted: %s", fmt.Sprintf(format, args...))
	return nil
}

// entry converts one entry, or returns nil (with a warning) when superd
// cannot serve it.
func (c *iconv) entry(e iEntry) *service {
	t := &ie{c: c, e: e, s: &service{file: e.file, line: e.line}}
	s := t.s
	if e.off {
		s.disable("#<off>#: disabled by update-inetd")
	}
	protoField, opts, _ := strings.Cut(e.proto, ",")
	if strings.HasPrefix(e.service, "tcpmux/") || e.service == "tcpmux" {
		return t.skip("TCPMUX services (RFC 1078) are not supported by superd")
	}
	if strings.HasPrefix(protoField, "rpc/") || protoField != "unix" && strings.Contains(e.service, "/") && !strings.HasPrefix(e.service, "/") {
		return t.skip("RPC services need a portmapper registration, which superd does not do")
	}

	// The socket: type, protocol and family.
	var scheme, proto string
	switch protoField {
	case "tcp", "tcp46":
		scheme, proto = "tcp", "tcp"
	case "tcp4", "tcp6", "udp4", "udp6":
		scheme, proto = protoField, protoField[:3]
	case "tcp6only", "udp6only":
		scheme, proto = protoField[:4], protoField[:3]
	case "udp", "udp46":
		scheme, proto = "udp", "udp"
	case "unix":
		proto = "unix"
	default:
		return t.skip("protocol %s: superd serves tcp, udp and unix sockets", protoField)
	}
	switch {
	case e.socketType != "stream" && e.socketType != "dgram" && !(e.socketType == "seqpacket" && proto == "unix"):
		return t.skip("socket type %s: superd serves stream and dgram sockets (and seqpacket ones on UNIX sockets)", e.socketType)
	case proto == "tcp" && e.socketType != "stream", proto == "udp" && e.socketType != "dgram":
		return t.skip("socket type %s does not go with protocol %s", e.socketType, protoField)
	}

	// How: wait or nowait, and the optional .max per minute.
	waitWord, max, hasMax := strings.Cut(e.wait, ".")
	if waitWord != "wait" && waitWord != "nowait" {
		return t.skip("%q is not wait or nowait[.max]; inetd skips the line", e.wait)
	}
	wait := waitWord == "wait"
	if hasMax {
		n, err := strconv.Atoi(max)
		switch {
		case err != nil || n < 0 || !digitsOnly(max):
			return t.skip("%q: the maximum after the dot must be a number; inetd skips the line", e.wait)
		case n > math.MaxInt32:
			t.warn("%s: a maximum this large limits nothing; not converted", e.wait)
		case n == 0:
			t.warn("%s: a maximum of 0 starts a minute is not converted (superd's rate_limit needs at least 1)", e.wait)
		default:
			s.rateLimit = &rateLimit{max: n, per: "1m", pause: "10m", comment: e.wait + ": at most " + max + " starts a minute, then a ten-minute pause"}
		}
	}

	internal := e.server == "internal"
	if internal && !internals[e.service] {
		return t.skip("internal service %q: superd's internal services are echo, discard, daytime, time and chargen", e.service)
	}
	// Where: the port (or socket path) and the local addresses.
	if proto == "unix" {
		if !path.IsAbs(e.service) {
			return t.skip("UNIX socket path %s is not absolute", e.service)
		}
		scheme = map[string]string{"stream": "unix", "dgram": "unixgram", "seqpacket": "unixpacket"}[e.socketType]
		s.listen = []string{scheme + "://" + e.service}
		if internal {
			return t.skip("internal services are served on TCP and UDP only")
		}
	} else {
		port, ok := c.port(t, proto, internal)
		if !ok {
			return nil
		}
		if !t.hosts(scheme, port) {
			return nil
		}
	}
	for _, l := range s.listen {
		if _, err := listener.ParseAddress(l); err != nil {
			return t.skip("cannot listen on %s: %v", l, err)
		}
	}
	if e.socketType == "stream" || e.socketType == "seqpacket" {
		s.mode = map[bool]string{true: "wait", false: "accept"}[wait]
	} else if !wait && !internal {
		t.warn("nowait on a datagram socket: superd serves datagram sockets in wait mode only (the program gets the socket itself), where inetd started one program per datagram")
	}

	// Socket buffers: tcp,sndbuf=64k,rcvbuf=16384.
	if opts != "" {
		for _, o := range strings.Split(opts, ",") {
			k, v, _ := strings.Cut(o, "=")
			key := map[string]string{"sndbuf": "send_buffer", "rcvbuf": "receive_buffer"}[k]
			n, ok := rlimitValue(v, true)
			switch {
			case key == "":
				t.warn("protocol option %q not converted: inetd knows sndbuf and rcvbuf", o)
			case !ok || n < 1 || n > 1<<30-1:
				t.warn("%s=%s not converted: not a size from 1 to 1G-1 (a number with k or m)", k, v)
			default:
				s.setSocket(key, int(n))
			}
		}
	}

	// What runs, as whom.
	userName, group := splitUser(e.user)
	switch {
	case internal:
		if wait && e.socketType == "stream" {
			t.warn("wait: superd serves internal stream services in accept mode")
		}
		s.internal, s.mode = e.service, ""
		if userName != "root" && userName != "0" || group != "" && group != "root" && group != "0" {
			t.warn("user %s not converted: superd serves internal services itself, without a child process", e.user)
		}
		if len(e.args) > 0 {
			t.warn("arguments %s not converted: superd's internal services take none", strings.Join(e.args, " "))
		}
	case !path.IsAbs(e.server):
		return t.skip("server %s is neither internal nor an absolute path", e.server)
	default:
		s.exec = []string{e.server}
		if len(e.args) > 0 {
			s.exec = append(s.exec, e.args[1:]...)
			if a := e.args[0]; a != e.server && a != path.Base(e.server) {
				s.argv0 = a
			}
		}
		if !validAccount(userName) {
			return t.skip("%q is not a user name or id", userName)
		}
		s.user = userName
		if group == "" && digitsOnly(userName) {
			// A bare id has no primary group: take the same number.
			group = userName
		}
		if group != "" {
			if !validAccount(group) {
				return t.skip("%q is not a group name or id", group)
			}
			s.group = group
			// As root with a group, inetd sets that group alone; any
			// other user keeps the groups of the group database.
			if userName == "root" || userName == "0" {
				s.groups, s.groupsSet = []string{group}, true
			}
		}
	}

	base := e.service
	if proto == "unix" {
		base = path.Base(e.service)
	}
	name := sanitizeName(base)
	if name != base {
		t.warn("%q is not a superd service name ([a-z0-9][a-z0-9_.-]*): imported as %s", base, name)
	}
	suffix := proto
	if proto == "unix" {
		suffix = scheme
	}
	s.name = c.names.name(name, suffix)
	return s
}

// port finds an entry's port: a number, or a name from /etc/services.
func (c *iconv) port(t *ie, proto string, internal bool) (int, bool) {
	svc := t.e.service
	if digitsOnly(svc) {
		n, err := strconv.Atoi(svc)
		if err != nil || n < 1 || n > 65535 {
			t.skip("port %s is not from 1 to 65535", svc)
			return 0, false
		}
		if internal {
			t.skip("an internal service is named by its service name, not a port number")
			return 0, false
		}
		return n, true
	}
	n, ok := c.db.port(svc, proto)
	if !ok {
		t.skip("no %s/%s in %s", svc, proto, servicesFile)
		return 0, false
	}
	return n, true
}

// hosts builds the listen addresses from the host list: "*" is every
// address, otherwise IP addresses separated by commas.
func (t *ie) hosts(scheme string, port int) bool {
	s := t.s
	if t.e.hosts == "*" {
		s.listen = []string{formatListen(scheme, netip.Addr{}, port)}
		return true
	}
	for _, h := range strings.Split(t.e.hosts, ",") {
		if h == "*" {
			t.skip("'*' (every address) cannot be listed with other addresses")
			return false
		}
		ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
		if err != nil {
			t.skip("local address %s is not an IP address: superd binds addresses only, with no DNS at start; write the address", h)
			return false
		}
		ip = ip.Unmap()
		if linkLocalNoZone(ip) {
			t.skip("local address %s is link-local without a zone, which cannot be bound: write it as %s%%INTERFACE", h, ip)
			return false
		}
		l := formatListen(scheme, ip, port)
		if !slices.Contains(s.listen, l) {
			s.listen = append(s.listen, l)
		}
	}
	return true
}

// splitUser splits user:group or user.group (':' first, as inetd reads
// it).
func splitUser(s string) (user, group string) {
	if u, g, ok := strings.Cut(s, ":"); ok {
		return u, g
	}
	if u, g, ok := strings.Cut(s, "."); ok {
		return u, g
	}
	return s, ""
}
