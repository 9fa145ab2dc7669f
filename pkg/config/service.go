package config

import (
	"math"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"sort"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/superd/superd/pkg/listener"
)

// Service defaults (SPEC §2.1), for documentation and tests: Load has
// already applied them to every Service it returns.
const (
	// DefaultMaxInstances is max_instances when none is set.
	DefaultMaxInstances = 256
	// DefaultPerSourcePrefix6 is per_source_prefix6 when none is set.
	DefaultPerSourcePrefix6 = 64
	// DefaultStopTimeout is stop_timeout when none is set.
	DefaultStopTimeout = 10 * time.Second
	// DefaultUmask is umask when none is set.
	DefaultUmask = 0o022
	// DefaultWorkingDirectory is working_directory when none is set.
	DefaultWorkingDirectory = "/"
	// DefaultFileMode is the permission of a UNIX socket file when
	// socket.file_mode is not set.
	DefaultFileMode = 0o666
)

// Unlimited is the Rlimit value of `unlimited` (RLIM_INFINITY).
const Unlimited uint64 = unix.RLIM_INFINITY

// maxNameLen bounds service names, which are also the default fd_name and
// LISTEN_FDNAMES entries are at most 255 bytes.
const maxNameLen = 255

var serviceName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// draft is a service while it is being read: the values of its keys and
// where each was written, so that combination checks can point at the key
// to change.
type draft struct {
	name string
	file string
	key  *yaml.Node // the service name's key node
	path string     // services.NAME
	// set holds every key that applies to the service, its own or from
	// defaults; bad holds those whose value was invalid (already
	// reported), so that later checks do not pile on.
	set map[string]field
	bad map[string]bool

	svc     Service
	listen  []listenItem
	sock    sockDraft
	mode    Mode
	pass    Pass
	stderr  Stderr
	user    string
	group   string
	groups  []field
	env     map[string]string
	passEnv []string
}

type listenItem struct {
	addr listener.Address
	f    field
}

func (d *draft) has(key string) bool { _, ok := d.set[key]; return ok }

// ok returns the field of key if it is set and valid.
func (d *draft) ok(key string) (field, bool) {
	f, ok := d.set[key]
	return f, ok && !d.bad[key]
}

// own returns the field of key if the service itself sets it.
func (d *draft) own(key string) (field, bool) {
	f, ok := d.set[key]
	return f, ok && !f.fromDefaults
}

func (d *draft) where() Position { return pos(d.file, d.key) }

type keyHandler func(p *parser, d *draft, f field) bool

// serviceKeys reads each service key of SPEC §2.1 into the draft. Handlers
// check only what the value alone decides, so that a value under defaults
// is judged the same for every service; combinations are checked in finish.
var serviceKeys = map[string]keyHandler{
	"listen":             (*parser).listenKey,
	"exec":               (*parser).execKey,
	"argv0":              func(p *parser, d *draft, f field) (ok bool) { d.svc.Argv0, ok = p.nonEmpty(f); return },
	"internal":           (*parser).internalKey,
	"redirect":           (*parser).redirectKey,
	"mode":               (*parser).modeKey,
	"pass":               (*parser).passKey,
	"stderr":             (*parser).stderrKey,
	"user":               func(p *parser, d *draft, f field) (ok bool) { d.user, ok = p.account(f); return },
	"group":              func(p *parser, d *draft, f field) (ok bool) { d.group, ok = p.account(f); return },
	"groups":             (*parser).groupsKey,
	"working_directory":  (*parser).workdirKey,
	"umask":              (*parser).umaskKey,
	"nice":               (*parser).niceKey,
	"env":                (*parser).envKey,
	"pass_env":           (*parser).passEnvKey,
	"rlimits":            (*parser).rlimitsKey,
	"max_duration":       func(p *parser, d *draft, f field) (ok bool) { d.svc.MaxDuration, ok = p.duration(f); return },
	"stop_signal":        func(p *parser, d *draft, f field) (ok bool) { d.svc.StopSignal, ok = p.signal(f); return },
	"stop_timeout":       func(p *parser, d *draft, f field) (ok bool) { d.svc.StopTimeout, ok = p.duration(f); return },
	"max_instances":      (*parser).maxInstancesKey,
	"max_per_source":     (*parser).maxPerSourceKey,
	"per_source_prefix6": (*parser).prefix6Key,
	"rate_limit":         (*parser).rateLimitKey,
	"allow":              func(p *parser, d *draft, f field) (ok bool) { d.svc.Allow, ok = p.prefixes(f); return },
	"deny":               func(p *parser, d *draft, f field) (ok bool) { d.svc.Deny, ok = p.prefixes(f); return },
	"access_times":       (*parser).accessTimesKey,
	"socket":             (*parser).socketKey,
	"disabled":           func(p *parser, d *draft, f field) (ok bool) { d.svc.Disabled, ok = p.boolean(f); return },
	"description":        func(p *parser, d *draft, f field) (ok bool) { d.svc.Description, ok = p.str(f); return },
}

var serviceKeyNames = sortedKeys(serviceKeys)

// notInDefaults are the keys that say what a service is; sharing them
// would make every service the same one.
var notInDefaults = map[string]bool{"listen": true, "exec": true, "argv0": true, "internal": true, "redirect": true}

// processKeys shape a child process; internal and redirect services have
// none, they run inside superd.
var processKeys = []string{
	"user", "group", "groups", "working_directory", "umask", "nice", "env", "pass_env",
	"rlimits", "max_duration", "stop_signal", "stop_timeout",
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func newDraft(name, file string, key *yaml.Node) *draft {
	return &draft{
		name: name, file: file, key: key, path: join("services", name),
		set: map[string]field{}, bad: map[string]bool{},
		svc: Service{
			Name:             name,
			Pos:              pos(file, key),
			WorkingDirectory: DefaultWorkingDirectory,
			Umask:            DefaultUmask,
			StopSignal:       syscall.SIGTERM,
			StopTimeout:      DefaultStopTimeout,
			MaxInstances:     DefaultMaxInstances,
			PerSourcePrefix6: DefaultPerSourcePrefix6,
		},
	}
}

// defaultsSection reads defaults: once, reporting its errors at their own
// positions, and returns the keys to apply to every service.
func (p *parser) defaultsSection(f field) []field {
	entries, _ := p.entries(f, true)
	var out []field
	scratch := newDraft("defaults", f.file, f.key)
	for _, e := range entries {
		name := e.key.Value
		h, known := serviceKeys[name]
		switch {
		case notInDefaults[name]:
			p.errKey(e, "not allowed in defaults: %s says what a service is, so every service writes its own", name)
		case !known:
			p.unknownServiceKey(e, name)
		default:
			e.fromDefaults = true
			h(p, scratch, e)
			out = append(out, e)
		}
	}
	return out
}

// service reads one service: its own keys, then the defaults it does not
// set (key by key: a service's own socket: replaces the default socket:
// whole), then the checks that need all of them.
func (p *parser) service(name string, f field, defaults []field) *draft {
	d := newDraft(name, f.file, f.key)
	if !serviceName.MatchString(name) || len(name) > maxNameLen {
		p.errKey(f, "invalid service name %q: use lowercase letters, digits, '_', '.' and '-', starting with a letter or digit (at most %d)", name, maxNameLen)
	}
	entries, ok := p.entries(f, false)
	if !ok {
		return d
	}
	for _, e := range entries {
		name := e.key.Value
		h, known := serviceKeys[name]
		if !known {
			p.unknownServiceKey(e, name)
			continue
		}
		d.set[name] = e
		if !h(p, d, e) {
			d.bad[name] = true
		}
	}
	for _, e := range defaults {
		name := e.key.Value
		if d.has(name) {
			continue
		}
		d.set[name] = e
		if !serviceKeys[name](p, d, e) {
			d.bad[name] = true
		}
	}
	p.finish(d)
	return d
}

// unknownServiceKey reports an unknown service key, pointing socket
// options, a common slip, to where they belong.
func (p *parser) unknownServiceKey(f field, name string) {
	if _, isSock := socketKeys[name]; isSock || name == "fd_name" {
		p.errKey(f, "unknown key; %s is a socket option: write it under socket:", name)
		return
	}
	p.unknownKey(f, name, serviceKeyNames)
}

func (p *parser) listenKey(d *draft, f field) bool {
	items, ok := p.items(f, true)
	if !ok {
		return false
	}
	if len(items) == 0 {
		p.errVal(f, "must name at least one address, e.g. tcp://:13")
		return false
	}
	for _, it := range items {
		s, ok := p.str(it)
		if !ok {
			continue
		}
		a, err := listener.ParseAddress(s)
		if err != nil {
			p.errVal(it, "%v", err)
			continue
		}
		d.listen = append(d.listen, listenItem{addr: a, f: it})
	}
	return len(d.listen) == len(items)
}

func (p *parser) execKey(d *draft, f field) bool {
	if f.val.Kind != yaml.SequenceNode {
		p.errVal(f, "expected a list such as [/usr/sbin/in.daytimed, -v], got %s", what(f.val))
		return false
	}
	items, _ := p.items(f, false)
	if len(items) == 0 {
		p.errVal(f, "must name the program to run, e.g. [/usr/sbin/in.daytimed]")
		return false
	}
	argv := make([]string, 0, len(items))
	ok := true
	for i, it := range items {
		s, good := p.str(it)
		switch {
		case !good:
			ok = false
		case i == 0 && !path.IsAbs(s):
			p.errVal(it, "program path %q must be absolute (superd does not search PATH)", s)
			ok = false
		}
		argv = append(argv, s)
	}
	if ok {
		d.svc.Exec = argv
	}
	return ok
}

func (p *parser) internalKey(d *draft, f field) (ok bool) {
	d.svc.Internal, ok = p.choice(f, "echo", "discard", "daytime", "time", "chargen")
	return ok
}

func (p *parser) redirectKey(d *draft, f field) bool {
	s, ok := p.str(f)
	if !ok || !p.hostPort(f, s, false, 1) {
		return false
	}
	d.svc.Redirect = s
	return true
}

func (p *parser) modeKey(d *draft, f field) bool {
	s, ok := p.choice(f, "accept", "wait")
	d.mode = map[string]Mode{"accept": Accept, "wait": Wait}[s]
	return ok
}

func (p *parser) passKey(d *draft, f field) bool {
	s, ok := p.choice(f, "stdio", "listen_fds")
	d.pass = map[string]Pass{"stdio": PassStdio, "listen_fds": PassListenFDs}[s]
	return ok
}

func (p *parser) stderrKey(d *draft, f field) bool {
	s, ok := p.choice(f, "log", "socket", "discard")
	d.stderr = map[string]Stderr{"log": StderrLog, "socket": StderrSocket, "discard": StderrDiscard}[s]
	return ok
}

// account reads a user or group: a name, or a numeric id for accounts that
// exist only as numbers (common in containers).
func (p *parser) account(f field) (string, bool) {
	if f.val.Kind == yaml.ScalarNode && f.val.ShortTag() == "!!int" {
		if _, ok := p.integer(f, 0, math.MaxUint32-1); !ok {
			return "", false
		}
		return f.val.Value, true
	}
	return p.nonEmpty(f)
}

func (p *parser) groupsKey(d *draft, f field) bool {
	items, ok := p.items(f, false)
	if !ok {
		return false
	}
	d.groups = d.groups[:0:0]
	for _, it := range items {
		if _, good := p.account(it); !good {
			ok = false
			continue
		}
		d.groups = append(d.groups, it)
	}
	return ok
}

func (p *parser) workdirKey(d *draft, f field) bool {
	s, ok := p.nonEmpty(f)
	if !ok {
		return false
	}
	if !path.IsAbs(s) {
		p.errVal(f, "must be an absolute path, got %q", s)
		return false
	}
	d.svc.WorkingDirectory = path.Clean(s)
	return true
}

func (p *parser) umaskKey(d *draft, f field) bool {
	v, ok := p.octal(f, 0o777)
	d.svc.Umask = uint16(v)
	return ok
}

func (p *parser) niceKey(d *draft, f field) bool {
	v, ok := p.integer(f, -20, 19)
	d.svc.Nice = int8(v)
	return ok
}

// reservedEnv are variables superd sets itself; a value from the
// configuration would be overwritten or would lie to the child.
var reservedEnv = map[string]bool{
	"SUPERD_SERVICE": true, "LISTEN_FDS": true, "LISTEN_PID": true, "LISTEN_FDNAMES": true,
}

func (p *parser) envName(f field, name string) bool {
	switch {
	case !validEnvName(name):
		p.errKey(f, "invalid variable name %q: use letters, digits and '_', not starting with a digit", name)
		return false
	case reservedEnv[name]:
		p.errKey(f, "%s is set by superd and cannot be configured", name)
		return false
	}
	return true
}

func (p *parser) envKey(d *draft, f field) bool {
	entries, ok := p.entries(f, true)
	d.env = make(map[string]string, len(entries))
	for _, e := range entries {
		name := e.key.Value
		if !p.envName(e, name) {
			ok = false
			continue
		}
		v := e.val
		switch {
		case v.Kind != yaml.ScalarNode || isNull(v):
			// Numbers and booleans are welcome as their literal text
			// (DEBUG: 1); lists, maps and nothing are not.
			p.errVal(e, "expected a string, got %s (write \"\" for an empty value)", what(v))
			ok = false
		case v.ShortTag() == "!!str":
			s, good := p.str(e)
			ok = ok && good
			d.env[name] = s
		default:
			d.env[name] = v.Value
		}
	}
	return ok
}

func (p *parser) passEnvKey(d *draft, f field) bool {
	items, ok := p.items(f, true)
	if !ok {
		return false
	}
	d.passEnv = d.passEnv[:0:0]
	for _, it := range items {
		s, good := p.str(it)
		if !good || !p.envName(it, s) {
			ok = false
			continue
		}
		if !slices.Contains(d.passEnv, s) {
			d.passEnv = append(d.passEnv, s)
		}
	}
	return ok
}

var rlimitResources = map[string]int{
	"nofile": unix.RLIMIT_NOFILE, "nproc": unix.RLIMIT_NPROC, "core": unix.RLIMIT_CORE,
	"cpu": unix.RLIMIT_CPU, "as": unix.RLIMIT_AS, "fsize": unix.RLIMIT_FSIZE,
	"data": unix.RLIMIT_DATA, "stack": unix.RLIMIT_STACK, "memlock": unix.RLIMIT_MEMLOCK,
}

var rlimitNames = sortedKeys(rlimitResources)

// rlimitUnits are the units of the limits that are not in bytes.
var rlimitUnits = map[string]string{"nofile": "files", "nproc": "processes", "cpu": "seconds"}

func (p *parser) rlimitsKey(d *draft, f field) bool {
	entries, ok := p.entries(f, true)
	d.svc.Rlimits = nil
	for _, e := range entries {
		name := e.key.Value
		res, known := rlimitResources[name]
		if !known {
			p.unknownKey(e, name, rlimitNames)
			ok = false
			continue
		}
		var v uint64
		if e.val.Kind == yaml.ScalarNode && e.val.ShortTag() == "!!str" && (e.val.Value == "unlimited" || e.val.Value == "infinity") {
			if name == "nofile" {
				// The kernel caps RLIMIT_NOFILE at fs.nr_open and
				// refuses RLIM_INFINITY.
				p.errVal(e, "nofile cannot be unlimited (the kernel caps it at fs.nr_open); give a number")
				ok = false
				continue
			}
			v = Unlimited
		} else {
			var good bool
			unit := rlimitUnits[name]
			if unit == "" {
				unit = "bytes"
			}
			if v, good = p.amountValue(e, unit); !good {
				ok = false
				continue
			}
		}
		// The program's own copy of the name, not the YAML scalar's.
		name = rlimitNames[slices.Index(rlimitNames, name)]
		d.svc.Rlimits = append(d.svc.Rlimits, Rlimit{Resource: res, Name: name, Value: v})
	}
	slices.SortFunc(d.svc.Rlimits, func(a, b Rlimit) int { return compareStrings(a.Name, b.Name) })
	return ok
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (p *parser) maxInstancesKey(d *draft, f field) bool {
	v, ok := p.integer(f, 0, math.MaxInt32)
	d.svc.MaxInstances = int(v)
	return ok
}

func (p *parser) maxPerSourceKey(d *draft, f field) bool {
	v, ok := p.integer(f, 0, math.MaxInt32)
	d.svc.MaxPerSource = int(v)
	return ok
}

func (p *parser) prefix6Key(d *draft, f field) bool {
	v, ok := p.integer(f, 1, 128)
	d.svc.PerSourcePrefix6 = uint8(v)
	return ok
}

var rateLimitKeys = []string{"max", "pause", "per"}

func (p *parser) rateLimitKey(d *draft, f field) bool {
	entries, ok := p.entries(f, false)
	if !ok {
		return false
	}
	rl := RateLimit{}
	var haveMax, havePer, havePause bool
	for _, e := range entries {
		var good bool
		switch e.key.Value {
		case "max":
			var v int64
			v, good = p.integer(e, 1, math.MaxInt32)
			rl.Max, haveMax = int(v), true
		case "per":
			rl.Per, good = p.duration(e)
			havePer = true
		case "pause":
			rl.Pause, good = p.duration(e)
			havePause = true
		default:
			p.unknownKey(e, e.key.Value, rateLimitKeys)
		}
		ok = ok && good
	}
	if !haveMax {
		p.add(f.keyPos(), join(f.path, "max"), "missing; rate_limit needs max, the number of activations allowed per window")
		ok = false
	}
	if !havePer {
		p.add(f.keyPos(), join(f.path, "per"), "missing; rate_limit needs per, the length of the window (e.g. \"1s\")")
		ok = false
	}
	if !havePause {
		rl.Pause = rl.Per
	}
	d.svc.RateLimit = nil
	if ok {
		d.svc.RateLimit = &rl
	}
	return ok
}

func (p *parser) prefixes(f field) (out []netip.Prefix, ok bool) {
	items, ok := p.items(f, true)
	for _, it := range items {
		pf, good := p.prefix(it)
		if !good {
			ok = false
			continue
		}
		out = append(out, pf)
	}
	return out, ok
}

func (p *parser) accessTimesKey(d *draft, f field) bool {
	items, ok := p.items(f, true)
	d.svc.AccessTimes = nil
	for _, it := range items {
		w, good := p.window(it)
		if !good {
			ok = false
			continue
		}
		d.svc.AccessTimes = append(d.svc.AccessTimes, w)
	}
	return ok
}
