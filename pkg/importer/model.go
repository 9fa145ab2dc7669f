package importer

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/superd/superd/pkg/listener"
)

// service is one superd service as the import will write it. Empty fields
// are left out of the YAML, so that superd's defaults apply.
type service struct {
	name string
	file string // where the old entry was written
	line int
	note string // more words for the origin comment, e.g. "(id echo-stream)"

	disabled    bool
	disabledWhy string // comment beside disabled: true

	listen []string // at least one, each valid for listener.ParseAddress
	mode   string   // "" (superd's default), accept or wait

	exec     []string
	argv0    string
	internal string
	redirect string

	user        string
	userComment string
	group       string
	groups      []string
	groupsSet   bool // groups: written even when empty
	env         map[string]string
	passEnv     []string
	umask       string
	nice        *int
	rlimits     []keyValue // superd name, value ("unlimited", a number or a size)

	maxInstances *int
	maxPerSource *int
	rateLimit    *rateLimit
	allow        []string
	deny         []string
	accessTimes  []string

	socket []socketOpt
}

// keyValue is one entry of an ordered map.
type keyValue struct{ key, value string }

// rateLimit is superd's rate_limit.
type rateLimit struct {
	max        int
	per, pause string // Go durations; pause "" means superd's default (per)
	comment    string
}

// socketOpt is one key under socket:, with a bool, int or string value.
type socketOpt struct {
	key string
	val any
}

func (s *service) setSocket(key string, val any) {
	for i := range s.socket {
		if s.socket[i].key == key {
			s.socket[i].val = val
			return
		}
	}
	s.socket = append(s.socket, socketOpt{key, val})
}

func (s *service) hasSocket(key string) bool {
	for _, o := range s.socket {
		if o.key == key {
			return true
		}
	}
	return false
}

// origin is where the service came from, FILE:LINE.
func (s *service) origin() string { return fmt.Sprintf("%s:%d", s.file, s.line) }

// disable marks s disabled, keeping the first reason.
func (s *service) disable(why string) {
	if !s.disabled {
		s.disabled, s.disabledWhy = true, why
	}
}

// defaultsSection is superd's defaults: the old super-server's built-in
// behaviour, then what its own defaults section said.
type defaultsSection struct {
	entries []defaultEntry
}

// defaultEntry is one key of defaults: with the comment above it.
type defaultEntry struct {
	key     string
	val     any // int, string or *rateLimit
	comment string
}

func (d *defaultsSection) set(key string, val any, comment string) {
	for i := range d.entries {
		if d.entries[i].key == key {
			d.entries[i] = defaultEntry{key, val, comment}
			return
		}
	}
	d.entries = append(d.entries, defaultEntry{key, val, comment})
}

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// maxNameLen is superd's longest service name.
const maxNameLen = 255

// sanitizeName turns an xinetd id or inetd service into a superd service
// name: lowercase, with any other character than [a-z0-9_.-] as '-'.
func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	out := strings.TrimLeft(b.String(), "_.-")
	if len(out) > maxNameLen-8 { // room for a "-N" suffix
		out = out[:maxNameLen-8]
	}
	if out == "" {
		out = "service"
	}
	return out
}

// namer hands out unique service names.
type namer map[string]bool

// name returns base, or base-suffix, or base-suffix-N, whichever is free
// first.
func (n namer) name(base, suffix string) string {
	try := []string{base}
	if suffix != "" {
		try = append(try, base+"-"+suffix)
	}
	for _, t := range try {
		if !n[t] {
			n[t] = true
			return t
		}
	}
	last := try[len(try)-1]
	for i := 2; ; i++ {
		t := last + "-" + strconv.Itoa(i)
		if !n[t] {
			n[t] = true
			return t
		}
	}
}

// formatListen writes a superd listen address; host is the zero Addr for
// every address.
func formatListen(scheme string, host netip.Addr, port int) string {
	switch {
	case !host.IsValid():
		return fmt.Sprintf("%s://:%d", scheme, port)
	case host.Is6():
		return fmt.Sprintf("%s://[%s]:%d", scheme, host, port)
	}
	return fmt.Sprintf("%s://%s:%d", scheme, host, port)
}

// v6Only rewrites a dual-stack listen address to its IPv6-only form.
func v6Only(addr string) string {
	scheme, rest, _ := strings.Cut(addr, "://")
	if rest, ok := strings.CutPrefix(rest, "[::]"); ok {
		return scheme + "6://" + rest
	}
	return scheme + "6://" + rest
}

// bindKey identifies what a socket binds, as superd's check compares them.
type bindKey struct {
	kind listener.Kind
	ip   netip.Addr
	port uint16
	path string
	abs  bool
}

func keyOf(a listener.Address) bindKey {
	if a.Family == listener.Unix {
		return bindKey{path: a.Path, abs: a.Abstract}
	}
	return bindKey{kind: a.Kind, ip: a.IP, port: a.Port}
}

// resolveConflicts keeps the enabled services bindable together, as superd
// requires: a service that binds an address an earlier one binds, or a
// wildcard whose family's address on that port an earlier one binds (or
// the other way round), is disabled (both super-servers also run only one
// of them: the second bind fails, over TCP at least), and a
// dual-stack [::] socket that shares its port with an IPv4 socket becomes
// IPv6-only, so that IPv4 clients reach the service written for them.
// laterWhy says, for a warning, why the old super-server ran only the
// first.
func resolveConflicts(svcs []*service, w *warnings, laterWhy string) {
	type seen struct {
		s    *service
		addr listener.Address
	}
	type portKey struct {
		kind listener.Kind
		port uint16
	}
	type familyPort struct {
		kind   listener.Kind
		family listener.Family
		port   uint16
	}
	bound := map[bindKey]*service{}
	dual := map[portKey]seen{}
	ipv4 := map[portKey]seen{}
	// The wildcards and the other addresses of each family on each port.
	wild := map[familyPort][]seen{}
	specific := map[familyPort][]seen{}
	for _, s := range svcs {
		if s.disabled {
			continue
		}
		var addrs []listener.Address
		for _, l := range s.listen {
			a, err := listener.ParseAddress(l)
			if err != nil {
				continue // the self-check reports it
			}
			addrs = append(addrs, a)
		}
		clash := ""
		for _, a := range addrs {
			if first, ok := bound[keyOf(a)]; ok {
				clash = fmt.Sprintf("%s binds %s like %s (%s); %s", s.name, a, first.name, first.origin(), laterWhy)
				break
			}
			if a.Family == listener.Unix || a.Port == 0 {
				continue
			}
			other := specific
			if !a.IP.IsUnspecified() {
				other = wild
			}
			for _, first := range other[familyPort{a.Kind, a.Family, a.Port}] {
				if !onDevices(s, first.s) {
					clash = fmt.Sprintf("%s binds %s, which %s's %s (%s) overlaps on the same port, and superd cannot bind both", s.name, a, first.s.name, first.addr, first.s.origin())
					break
				}
			}
			if clash != "" {
				break
			}
		}
		if clash != "" {
			w.add(s.file, s.line, "%s: imported disabled", clash)
			s.disable("binds the address of another service")
			continue
		}
		for i, a := range addrs {
			bound[keyOf(a)] = s
			if a.Family == listener.Unix || a.Port == 0 {
				continue
			}
			mine := specific
			if a.IP.IsUnspecified() {
				mine = wild
			}
			fp := familyPort{a.Kind, a.Family, a.Port}
			mine[fp] = append(mine[fp], seen{s, a})
			pk := portKey{a.Kind, a.Port}
			switch {
			case a.DualStack && !s.hasSocket("ipv6_only"):
				if v4, ok := ipv4[pk]; ok {
					s.listen[i] = v6Only(s.listen[i])
					w.add(s.file, s.line, "%s listens on %s, whose port IPv4 service %s (%s) also binds: made IPv6-only (%s), so that each gets its own clients", s.name, a, v4.s.name, v4.s.origin(), s.listen[i])
					continue
				}
				dual[pk] = seen{s, a}
			case a.Family == listener.IPv4:
				if ds, ok := dual[pk]; ok && ds.s != s {
					for j, l := range ds.s.listen {
						if pa, err := listener.ParseAddress(l); err == nil && pa == ds.addr {
							ds.s.listen[j] = v6Only(l)
							w.add(ds.s.file, ds.s.line, "%s listens on %s, whose port IPv4 service %s (%s) also binds: made IPv6-only (%s), so that each gets its own clients", ds.s.name, ds.addr, s.name, s.origin(), ds.s.listen[j])
						}
					}
					delete(dual, pk)
				}
				ipv4[pk] = seen{s, a}
			}
		}
	}
}

// onDevices says whether a and b are bound to two different devices
// (socket.bind_to_device), which lets their addresses overlap.
func onDevices(a, b *service) bool {
	device := func(s *service) string {
		for _, o := range s.socket {
			if o.key == "bind_to_device" {
				name, _ := o.val.(string)
				return name
			}
		}
		return ""
	}
	da, db := device(a), device(b)
	return da != "" && db != "" && da != db
}
