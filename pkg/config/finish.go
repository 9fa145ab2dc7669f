package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/superd/superd/pkg/listener"
)

// finish runs the checks that need several keys of a service and fills in
// what depends on them (mode, pass, credentials, environment, sockets).
//
// A key from defaults that does not fit a service (mode: accept for a UDP
// service, user for an internal one) is not applied to it rather than
// reported: defaults are shared, and a service could not opt out of them
// otherwise. The exception is allow and deny, which a wait-mode exec
// service cannot enforce: silently dropping them would open the service.
func (p *parser) finish(d *draft) {
	s := &d.svc

	runs := p.whatRuns(d)
	if f, ok := d.own("argv0"); ok && runs != "exec" && runs != "" {
		p.errKey(f, "argv0 needs exec")
	}

	if _, ok := d.set["listen"]; !ok {
		p.add(d.where(), join(d.path, "listen"), "missing; every service listens on at least one address, e.g. listen: tcp://:13")
	}
	var stream, dgram *listenItem
	for i := range d.listen {
		li := &d.listen[i]
		if li.addr.Kind == listener.Datagram {
			if dgram == nil {
				dgram = li
			}
		} else if stream == nil {
			stream = li
		}
	}

	s.Mode = p.mode(d, runs, stream, dgram)

	s.Pass = PassStdio
	if f, ok := d.set["pass"]; ok {
		switch {
		case runs == "":
		case runs != "exec":
			if !f.fromDefaults {
				p.errKey(f, "does not apply to %s services, which superd serves itself", runs)
			}
		case !d.bad["pass"]:
			s.Pass = d.pass
		}
	}
	if runs == "exec" && s.Mode == Wait && s.Pass == PassStdio && len(d.listen) > 1 {
		const msg = "%s in wait mode gives the child one socket as stdin and stdout, but this service has %d; use pass: listen_fds"
		if f, ok := d.own("pass"); ok {
			p.errKey(f, msg, "pass: stdio", len(d.listen))
		} else {
			p.errKey(d.set["listen"], msg, "pass: stdio (the default)", len(d.listen))
		}
	}

	s.Stderr = StderrLog
	if f, ok := d.set["stderr"]; ok {
		switch {
		case runs == "":
		case runs != "exec":
			if !f.fromDefaults {
				p.errKey(f, "does not apply to %s services, which superd serves itself", runs)
			}
		case d.bad["stderr"]:
		case d.stderr == StderrSocket && (s.Mode != Accept || s.Pass != PassStdio):
			if !f.fromDefaults {
				p.errKey(f, "stderr: socket needs accept mode with pass: stdio, where the connection is also fd 2")
			}
		default:
			s.Stderr = d.stderr
		}
	}

	if runs == "exec" {
		p.execProcess(d)
	} else if runs != "" {
		p.noProcess(d, runs)
	}

	if runs == "exec" && s.Mode == Wait {
		// In wait mode the child accepts or reads by itself: superd never
		// sees a client, so it cannot hold these.
		for _, key := range []string{"max_duration", "max_per_source"} {
			if f, ok := d.set[key]; ok && !f.fromDefaults {
				p.errKey(f, "applies in accept mode only; in wait mode the child serves every client itself")
			}
		}
		s.MaxDuration, s.MaxPerSource = 0, 0
		for _, key := range []string{"allow", "deny"} {
			f, ok := d.set[key]
			switch {
			case !ok || d.bad[key]:
			case !f.fromDefaults && (len(s.Allow) > 0 && key == "allow" || len(s.Deny) > 0 && key == "deny"):
				p.errKey(f, "cannot be enforced in wait mode, where the child reads the socket itself")
			case len(s.Allow) > 0 && key == "allow" || len(s.Deny) > 0 && key == "deny":
				p.add(d.where(), join(d.path, key), "%s from defaults (%s) cannot be enforced in wait mode, where the child reads the socket itself; write %s: [] in this service to run it without", key, f.keyPos(), key)
			}
		}
	}

	p.sockets(d)
}

// whatRuns checks that exactly one of exec, internal and redirect is set
// and returns it ("" when none is).
func (p *parser) whatRuns(d *draft) string {
	var set []field
	var names []string
	for _, k := range []string{"exec", "internal", "redirect"} {
		if f, ok := d.set[k]; ok {
			set = append(set, f)
			names = append(names, k)
		}
	}
	switch len(set) {
	case 0:
		p.add(d.where(), d.path, "needs one of exec, internal or redirect: what to run for each client")
		return ""
	case 1:
		return names[0]
	}
	// Report at the key written last, the likelier mistake; keep the
	// first for the remaining checks.
	order := []int{0, 1, 2}[:len(set)]
	sort.SliceStable(order, func(i, j int) bool {
		a, b := set[order[i]].keyPos(), set[order[j]].keyPos()
		return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
	})
	both := strings.Join(names, " and ")
	if len(names) == 3 {
		both = "exec, internal and redirect are all"
	} else {
		both += " are both"
	}
	p.errKey(set[order[len(order)-1]], "%s set; a service runs exactly one of exec, internal or redirect", both)
	return names[order[0]]
}

// mode decides accept or wait: the service's own choice if its sockets
// allow it, otherwise wait when any socket is a datagram one.
func (p *parser) mode(d *draft, runs string, stream, dgram *listenItem) Mode {
	def := Accept
	if dgram != nil {
		def = Wait
	}
	if runs == "redirect" {
		if dgram != nil {
			p.errVal(dgram.f, "redirect relays stream connections; %s is a datagram socket", dgram.addr)
		}
		for _, li := range d.listen {
			if li.addr.Kind == listener.SeqPacket {
				p.errVal(li.f, "redirect relays stream connections; %s is a seqpacket socket", li.addr)
				break
			}
		}
		if f, ok := d.own("mode"); ok && !d.bad["mode"] && d.mode == Wait {
			p.errKey(f, "redirect runs in accept mode: superd relays each connection itself")
		}
		return Accept
	}
	if runs == "internal" && stream != nil && dgram != nil {
		p.errKey(d.set["listen"], "an internal service cannot mix stream sockets (served in accept mode) and datagram sockets (wait mode); make two services")
		return def
	}
	f, ok := d.ok("mode")
	if !ok {
		return def
	}
	var why string
	switch {
	case d.mode == Accept && dgram != nil:
		why = fmt.Sprintf("accept mode needs stream or seqpacket sockets, but %s is a datagram socket; datagram sockets are served in wait mode", dgram.addr)
	case d.mode == Wait && runs == "internal" && stream != nil:
		why = "internal services on stream sockets run in accept mode"
	}
	if why == "" {
		return d.mode
	}
	if !f.fromDefaults {
		p.errKey(f, "%s", why)
	}
	return def
}

// noProcess refuses process keys on services that start no process.
func (p *parser) noProcess(d *draft, runs string) {
	for _, key := range processKeys {
		if f, ok := d.own(key); ok {
			p.errKey(f, "does not apply to %s services, which superd serves itself without a child process", runs)
		}
	}
	// Leave the process fields at their defaults whatever defaults: said:
	// nothing downstream should have to know they are unused.
	fresh := newDraft(d.name, d.file, d.key).svc
	s := &d.svc
	s.WorkingDirectory, s.Umask, s.Nice = fresh.WorkingDirectory, fresh.Umask, fresh.Nice
	s.Rlimits, s.MaxDuration = nil, 0
	s.StopSignal, s.StopTimeout = fresh.StopSignal, fresh.StopTimeout
}

// execProcess resolves what an exec service's child runs as and with.
func (p *parser) execProcess(d *draft) {
	s := &d.svc
	if _, ok := d.set["user"]; !ok {
		if p.opts.AsRoot {
			p.add(d.where(), join(d.path, "user"), "missing; superd runs as root, so an exec service must name its user (write \"user: root\" to run it as root)")
		}
		for _, key := range []string{"group", "groups"} {
			if f, ok := d.set[key]; ok {
				p.errKey(f, "needs user: without it the child runs as superd's own user and groups")
			}
		}
	} else {
		s.Credential = p.credential(d)
	}

	env := map[string]string{"PATH": strings.TrimPrefix(DefaultPath, "PATH=")}
	for _, name := range d.passEnv {
		if v, ok := p.opts.Getenv(name); ok {
			env[name] = v
		}
	}
	for k, v := range d.env {
		env[k] = v
	}
	env["SUPERD_SERVICE"] = d.name
	s.Env = make([]string, 0, len(env))
	for k, v := range env {
		kv := k + "=" + v
		if kv == DefaultPath {
			kv = DefaultPath // one copy for every service, not one each
		}
		s.Env = append(s.Env, kv)
	}
	sort.Strings(s.Env)
}
