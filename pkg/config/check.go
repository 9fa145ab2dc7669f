package config

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/superd/superd/pkg/listener"
)

// bindKey identifies what a socket binds, whatever the spelling of its
// address: tcp://0.0.0.0:13 and tcp4://0.0.0.0:13 bind the same thing.
type bindKey struct {
	kind     listener.Kind // IP only: TCP and UDP ports are apart
	ip       netip.Addr
	port     uint16
	path     string // UNIX: stream and datagram share the file system
	abstract bool
}

func keyOf(a listener.Address) bindKey {
	if a.Family == listener.Unix {
		return bindKey{path: a.Path, abstract: a.Abstract}
	}
	return bindKey{kind: a.Kind, ip: a.IP, port: a.Port}
}

// occurrence is one socket of one service, where its address was written.
// It points into the draft: crossCheck makes one per socket.
type occurrence struct {
	d    *draft
	sock *Socket
	f    *field
}

// crossCheck finds sockets that cannot all be bound: the same address
// twice, an IPv4 address on the port of a dual-stack [::] socket, and a
// wildcard (0.0.0.0, [::]) with an address of its family on the same port:
// Linux refuses the second bind, TCP or UDP, in either order, unless both
// sockets set reuse_port or they are bound to different devices.
// Disabled services bind nothing and are left out, so that a disabled
// variant can keep the address of the enabled one. Port 0 (any free port)
// never conflicts.
func (p *parser) crossCheck(drafts []*draft) {
	n := 0
	for _, d := range drafts {
		n += len(d.listen)
	}
	all := make([]occurrence, 0, n)
	for _, d := range drafts {
		if len(d.svc.Sockets) != len(d.listen) {
			continue
		}
		for i := range d.listen {
			all = append(all, occurrence{d: d, sock: &d.svc.Sockets[i], f: &d.listen[i].f})
		}
	}
	// Report each conflict at the address written later, naming the
	// earlier one.
	slices.SortStableFunc(all, func(a, b occurrence) int {
		pa, pb := a.f.valPos(), b.f.valPos()
		return cmp.Or(cmp.Compare(pa.File, pb.File), cmp.Compare(pa.Line, pb.Line), cmp.Compare(pa.Col, pb.Col))
	})

	type portKey struct {
		kind listener.Kind
		port uint16
	}
	type familyPort struct {
		kind   listener.Kind
		family listener.Family
		port   uint16
	}
	// The first socket on each address and port, as indexes into all.
	seen := make(map[bindKey]int32, len(all))
	dual := map[portKey]int32{}
	ipv4 := make(map[portKey]int32, len(all))
	// The wildcards and the other addresses of each family on each port
	// (all of them: two wildcards on two devices may share a port, and
	// an address can clash with either).
	wild := map[familyPort][]int32{}
	specific := make(map[familyPort][]int32, len(all))
	for i := range all {
		o := &all[i]
		a := o.sock.Address
		if a.Family != listener.Unix && a.Port == 0 {
			continue
		}
		k := keyOf(a)
		what := "address"
		if a.Family == listener.Unix {
			what = "socket file"
			if a.Abstract {
				what = "abstract name"
			}
		}
		if j, dup := seen[k]; dup {
			first := &all[j]
			switch {
			case first.d == o.d && first.sock.Address == a:
				p.errVal(*o.f, "%s is listed twice (first as %s at %s)", a, first.f.path, first.f.valPos())
				continue
			case first.d == o.d:
				p.errVal(*o.f, "%s and %s (%s at %s) bind the same %s", a, first.sock.Address, first.f.path, first.f.valPos(), what)
				continue
			case first.d.svc.Disabled || o.d.svc.Disabled:
			case shareable(first.sock, o.sock):
			default:
				as := ""
				if first.sock.Address != a {
					as = " as " + first.sock.Address.String()
				}
				p.errVal(*o.f, "%s is also bound by %s at %s%s; two services can share an address only with socket: {reuse_port: true} in both", a, first.f.path, first.f.valPos(), as)
				continue
			}
		} else {
			seen[k] = int32(i)
		}
		if o.d.svc.Disabled || a.Family == listener.Unix {
			continue
		}
		fp := familyPort{a.Kind, a.Family, a.Port}
		other, mine := specific, wild
		if !a.IP.IsUnspecified() {
			other, mine = wild, specific
		}
		clash := -1
		for _, j := range other[fp] {
			if !shareable(all[j].sock, o.sock) {
				clash = int(j)
				break
			}
		}
		if clash >= 0 {
			first := &all[clash]
			p.errVal(*o.f, "%s and %s (%s at %s) cannot both be bound: a wildcard takes its family's every address on the port; set socket: {reuse_port: true} in both, or listen on the addresses one by one",
				a, first.sock.Address, first.f.path, first.f.valPos())
			continue
		}
		mine[fp] = append(mine[fp], int32(i))
		pk := portKey{a.Kind, a.Port}
		switch {
		case a.DualStack && !o.sock.Options.IPv6Only:
			if j, ok := ipv4[pk]; ok {
				p.dualStack(o, &all[j])
			} else if _, ok := dual[pk]; !ok {
				dual[pk] = int32(i)
			}
		case a.Family == listener.IPv4:
			if j, ok := dual[pk]; ok {
				p.dualStack(o, &all[j])
			} else if _, ok := ipv4[pk]; !ok {
				ipv4[pk] = int32(i)
			}
		}
	}
}

// dualStack reports an IPv4 socket and a dual-stack [::] socket on the
// same port: the [::] socket takes IPv4 too, so the second bind fails.
func (p *parser) dualStack(later, earlier *occurrence) {
	ds := later
	if !later.sock.Address.DualStack {
		ds = earlier
	}
	p.errVal(*later.f, "%s and %s (%s at %s) both take IPv4 port %d: set socket: {ipv6_only: true} in %s so that [::] takes IPv6 only",
		later.sock.Address, earlier.sock.Address, earlier.f.path, earlier.f.valPos(), later.sock.Address.Port, ds.d.path)
}

// shareable says whether two IP sockets may bind overlapping addresses:
// both set SO_REUSEPORT, or they are bound to two different devices.
func shareable(a, b *Socket) bool {
	if a.Options.ReusePort && b.Options.ReusePort {
		return true
	}
	da, db := a.Options.BindToDevice, b.Options.BindToDevice
	return da != "" && db != "" && da != db
}
