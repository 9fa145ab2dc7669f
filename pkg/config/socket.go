package config

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/superd/superd/pkg/listener"
)

// sockDraft is a service's socket: map, read but not yet applied to its
// addresses.
type sockDraft struct {
	opts   []sockOpt
	fdName string
}

// sockOpt is one option with the setter that applies it, so that each can
// be tried alone against an address to find out whether it applies there.
type sockOpt struct {
	name  string
	f     field
	apply func(o *listener.Options)
}

type sockParser func(p *parser, f field) (func(o *listener.Options), bool)

// The ranges below are the kernel's, as listener.Options.Validate has them:
// a value out of range must be an error even when it comes from defaults,
// where an option that does not apply to a socket is merely skipped.
const (
	maxKeepAliveSecs = 32767
	maxBuffer        = math.MaxInt32 / 2
)

var socketKeys = map[string]sockParser{
	"backlog":            intOpt(1, math.MaxInt32, func(o *listener.Options) *int32 { return &o.Backlog }),
	"ipv6_only":          boolOpt(func(o *listener.Options, v bool) { o.IPv6Only = v }),
	"reuse_port":         boolOpt(func(o *listener.Options, v bool) { o.ReusePort = v }),
	"free_bind":          boolOpt(func(o *listener.Options, v bool) { o.FreeBind = v }),
	"transparent":        boolOpt(func(o *listener.Options, v bool) { o.Transparent = v }),
	"bind_to_device":     bindToDevice,
	"keepalive":          boolOpt(func(o *listener.Options, v bool) { o.KeepAlive = v }),
	"keepalive_time":     secondsOpt(maxKeepAliveSecs, func(o *listener.Options, v int64) { o.KeepAliveTime = secs(v) }),
	"keepalive_interval": secondsOpt(maxKeepAliveSecs, func(o *listener.Options, v int64) { o.KeepAliveIntvl = secs(v) }),
	"keepalive_count":    intOpt(1, 127, func(o *listener.Options) *int16 { return &o.KeepAliveCount }),
	"no_delay":           boolOpt(func(o *listener.Options, v bool) { o.NoDelay = v }),
	"defer_accept":       secondsOpt(math.MaxInt32, func(o *listener.Options, v int64) { o.DeferAccept = secs(v) }),
	"receive_buffer":     sizeOpt(func(o *listener.Options) *int32 { return &o.ReceiveBuffer }),
	"send_buffer":        sizeOpt(func(o *listener.Options) *int32 { return &o.SendBuffer }),
	"mark":               intOpt(0, math.MaxUint32, func(o *listener.Options) *uint32 { return &o.Mark }),
	"ip_tos":             intOpt(0, 255, func(o *listener.Options) *uint8 { return &o.IPTOS }),
	"ip_ttl":             intOpt(1, 255, func(o *listener.Options) *uint8 { return &o.IPTTL }),
	"priority":           intOpt(0, math.MaxInt32, func(o *listener.Options) *int32 { return &o.Priority }),
	"broadcast":          boolOpt(func(o *listener.Options, v bool) { o.Broadcast = v }),
	"pass_credentials":   boolOpt(func(o *listener.Options, v bool) { o.PassCredentials = v }),
	"file_mode":          fileMode,
	"owner":              owner,
	"group":              ownerGroup,
}

var socketKeyNames = append(sortedKeys(socketKeys), "fd_name")

func boolOpt(set func(*listener.Options, bool)) sockParser {
	return func(p *parser, f field) (func(*listener.Options), bool) {
		v, ok := p.boolean(f)
		return func(o *listener.Options) { set(o, v) }, ok
	}
}

// intOpt parses an integer from lo to hi into the option that at points
// to. The range must fit the option's type: checked when the table of
// socket keys is made, so that no bound can ever wrap a value.
func intOpt[T int16 | int32 | uint8 | uint32](lo, hi int64, at func(*listener.Options) *T) sockParser {
	if int64(T(lo)) != lo || int64(T(hi)) != hi {
		panic(fmt.Sprintf("config: socket option bounds %d-%d do not fit %T", lo, hi, T(0)))
	}
	return func(p *parser, f field) (func(*listener.Options), bool) {
		v, ok := p.integer(f, lo, hi)
		return func(o *listener.Options) { *at(o) = T(v) }, ok
	}
}

func secondsOpt(maxSec int64, set func(*listener.Options, int64)) sockParser {
	return func(p *parser, f field) (func(*listener.Options), bool) {
		d, ok := p.seconds(f, maxSec)
		return func(o *listener.Options) { set(o, int64(d/secs(1))) }, ok
	}
}

// sizeOpt parses a size from 1 to maxBuffer, which an int32 holds, into
// the option that at points to.
func sizeOpt(at func(*listener.Options) *int32) sockParser {
	if int64(int32(maxBuffer)) != maxBuffer {
		panic("config: maxBuffer does not fit a socket option")
	}
	return func(p *parser, f field) (func(*listener.Options), bool) {
		v, ok := p.size(f, 1, maxBuffer)
		return func(o *listener.Options) { *at(o) = int32(v) }, ok
	}
}

func bindToDevice(p *parser, f field) (func(*listener.Options), bool) {
	s, ok := p.nonEmpty(f)
	if ok && (len(s) > 15 || s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n\v\f\r")) {
		p.errVal(f, "%q is not an interface name (at most 15 characters, no '/', ':' or spaces)", s)
		ok = false
	}
	return func(o *listener.Options) { o.BindToDevice = s }, ok
}

func fileMode(p *parser, f field) (func(*listener.Options), bool) {
	v, ok := p.octal(f, 0o777)
	if ok && v == 0 {
		// The listener reads 0 as "the default, 0666": refuse it rather
		// than open the socket to everyone.
		p.errVal(f, "must not be 0 (that would let only root connect); use e.g. \"0600\"")
		ok = false
	}
	return func(o *listener.Options) { o.FileMode = v }, ok
}

func owner(p *parser, f field) (func(*listener.Options), bool) {
	uid, ok := p.uidOf(f)
	return func(o *listener.Options) { o.OwnerUID = uid }, ok
}

func ownerGroup(p *parser, f field) (func(*listener.Options), bool) {
	gid, ok := p.gidOf(f)
	return func(o *listener.Options) { o.OwnerGID = gid }, ok
}

func (p *parser) socketKey(d *draft, f field) bool {
	entries, ok := p.entries(f, true)
	d.sock = sockDraft{}
	for _, e := range entries {
		name := e.key.Value
		if name == "fd_name" {
			s, good := p.nonEmpty(e)
			if good && !validFDName(s) {
				p.errVal(e, "invalid fd_name %q: use at most 255 letters, digits, '_', '.' and '-'", s)
				good = false
			}
			d.sock.fdName = s
			ok = ok && good
			continue
		}
		parse, known := socketKeys[name]
		if !known {
			p.unknownKey(e, name, socketKeyNames)
			ok = false
			continue
		}
		apply, good := parse(p, e)
		if !good {
			ok = false
			continue
		}
		d.sock.opts = append(d.sock.opts, sockOpt{name: name, f: e, apply: apply})
	}
	return p.keepAliveNeeded(d) && ok
}

// keepAliveNeeded refuses keepalive_time, _interval and _count without
// keepalive: true, which the kernel would accept and ignore, and drops
// them so that they are not reported again for each socket.
func (p *parser) keepAliveNeeded(d *draft) bool {
	var probe listener.Options
	for _, o := range d.sock.opts {
		if o.name == "keepalive" {
			o.apply(&probe)
		}
	}
	if probe.KeepAlive {
		return true
	}
	ok := true
	kept := d.sock.opts[:0]
	for _, o := range d.sock.opts {
		if strings.HasPrefix(o.name, "keepalive_") {
			p.errKey(o.f, "has no effect without keepalive: true")
			ok = false
			continue
		}
		kept = append(kept, o)
	}
	d.sock.opts = kept
	return ok
}

// validFDName is what sd_listen_fds_with_names(3) accepts: at most 255
// characters, none of them ':' (the separator) or a control character; we
// keep to the portable set.
func validFDName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// baseOptions are the options every socket of an address's kind gets
// before the service's own: the SPEC's defaults, set only where they apply
// so that Validate accepts them.
func baseOptions(a listener.Address) listener.Options {
	o := listener.Options{OwnerUID: listener.NoOwner, OwnerGID: listener.NoOwner}
	if a.Kind != listener.Datagram {
		o.Backlog = listener.DefaultBacklog
	}
	if a.Family == listener.Unix && !a.Abstract {
		o.FileMode = DefaultFileMode
	}
	return o
}

// sockets applies the socket: options to each address. An option the
// service sets that cannot apply to one of its addresses is an error at
// the option; one from defaults is skipped for that address, as defaults
// apply where they make sense.
func (p *parser) sockets(d *draft) {
	reported := map[string]bool{}
	sockField, haveSock := d.set["socket"]
	for _, li := range d.listen {
		a := li.addr
		base := baseOptions(a)
		o := base
		baseErr := base.Validate(a)
		failed := false
		for _, so := range d.sock.opts {
			probe := base
			if strings.HasPrefix(so.name, "keepalive_") && a.Family != listener.Unix && a.Kind == listener.Stream {
				// Judge keepalive_time alone on TCP, where it is
				// known to come with keepalive: true; elsewhere let
				// it fail under its own name.
				probe.KeepAlive = true
			}
			so.apply(&probe)
			if err := probe.Validate(a); err != nil && baseErr == nil {
				if !so.f.fromDefaults && !reported[so.name] {
					p.errKey(so.f, "%v; %s is %s", err, li.f.path, a)
					reported[so.name] = true
				}
				failed = failed || !so.f.fromDefaults
				continue
			}
			so.apply(&o)
		}
		if err := o.Validate(a); err != nil && !failed {
			// A combination no single option explains, or an address
			// that needs an option (a link-local address without a zone).
			if haveSock && !sockField.fromDefaults && baseErr == nil {
				p.errKey(sockField, "%v; %s is %s", err, li.f.path, a)
			} else {
				p.errVal(li.f, "%v", err)
			}
		}
		fdName := d.sock.fdName
		if fdName == "" {
			fdName = d.name
		}
		d.svc.Sockets = append(d.svc.Sockets, Socket{Address: a, Options: o, FDName: fdName})
	}
}

func secs(n int64) time.Duration { return time.Duration(n) * time.Second }
