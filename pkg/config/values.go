package config

import (
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"
)

// str reads a string. Plain scalars YAML resolves to other types (`123`,
// `true`) are refused rather than converted: a user who wrote them meant
// something else as often as not, and quoting is cheap.
func (p *parser) str(f field) (string, bool) {
	if f.val.Kind != yaml.ScalarNode || f.val.ShortTag() != "!!str" {
		p.wrongType(f, "a string")
		return "", false
	}
	if strings.ContainsRune(f.val.Value, 0) {
		// No string of ours can reach a program, a path or a syscall
		// with a NUL in it intact.
		p.errVal(f, "must not contain a NUL character")
		return "", false
	}
	return f.val.Value, true
}

func (p *parser) nonEmpty(f field) (string, bool) {
	s, ok := p.str(f)
	if ok && s == "" {
		p.errVal(f, "must not be empty")
		return "", false
	}
	return s, ok
}

func (p *parser) boolean(f field) (bool, bool) {
	var b bool
	if f.val.Kind != yaml.ScalarNode || f.val.ShortTag() != "!!bool" || f.val.Decode(&b) != nil {
		p.wrongType(f, "true or false")
		return false, false
	}
	return b, true
}

// integer reads an integer in [lo, hi].
func (p *parser) integer(f field, lo, hi int64) (int64, bool) {
	var v int64
	if f.val.Kind != yaml.ScalarNode || f.val.ShortTag() != "!!int" {
		p.wrongType(f, "an integer")
		return 0, false
	}
	if err := f.val.Decode(&v); err != nil {
		p.errVal(f, "integer %s is out of range", f.val.Value)
		return 0, false
	}
	return v, p.inRange(f, v, lo, hi)
}

func (p *parser) inRange(f field, v, lo, hi int64) bool {
	switch {
	case v >= lo && v <= hi:
		return true
	case hi == math.MaxInt64:
		p.errVal(f, "must be at least %d, got %d", lo, v)
	default:
		p.errVal(f, "must be between %d and %d, got %d", lo, hi, v)
	}
	return false
}

// duration reads a Go duration string that must be more than zero: no
// duration key of ours has a use for zero or less.
func (p *parser) duration(f field) (time.Duration, bool) {
	if f.val.Kind != yaml.ScalarNode || f.val.ShortTag() != "!!str" {
		p.errVal(f, "expected a duration such as \"1.5s\" or \"10m\", got %s", what(f.val))
		return 0, false
	}
	d, err := time.ParseDuration(f.val.Value)
	if err != nil {
		p.errVal(f, "invalid duration %q: use a Go duration such as \"1.5s\" or \"10m\"", f.val.Value)
		return 0, false
	}
	if d <= 0 {
		p.errVal(f, "must be more than 0, got %s", f.val.Value)
		return 0, false
	}
	return d, true
}

// seconds reads a duration the kernel takes in whole seconds; a fraction
// would be silently truncated, so it is refused.
func (p *parser) seconds(f field, maxSec int64) (time.Duration, bool) {
	d, ok := p.duration(f)
	if !ok {
		return 0, false
	}
	if d%time.Second != 0 {
		p.errVal(f, "must be a whole number of seconds, got %s", f.val.Value)
		return 0, false
	}
	if int64(d/time.Second) > maxSec {
		p.errVal(f, "must be at most %s, got %s", time.Duration(maxSec)*time.Second, f.val.Value)
		return 0, false
	}
	return d, true
}

// size reads a byte count: an integer, or a string with a K, M or G suffix
// (powers of 1024), in [lo, hi].
func (p *parser) size(f field, lo, hi uint64) (uint64, bool) {
	v, ok := p.sizeValue(f)
	if !ok {
		return 0, false
	}
	if v < lo || v > hi {
		p.errVal(f, "must be between %d and %d, got %s", lo, hi, f.val.Value)
		return 0, false
	}
	return v, true
}

func (p *parser) sizeValue(f field) (uint64, bool) {
	return p.amountValue(f, "bytes")
}

// amountValue is sizeValue for an amount of unit (bytes, files,
// processes, seconds), which the error messages name.
func (p *parser) amountValue(f field, unit string) (uint64, bool) {
	kind := "size"
	if unit != "bytes" {
		kind = "number"
	}
	n := f.val
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!str") {
		p.errVal(f, "expected a %s such as 65536 or \"64K\", got %s", kind, what(n))
		return 0, false
	}
	if n.ShortTag() == "!!int" {
		var v int64
		if err := n.Decode(&v); err != nil || v < 0 {
			p.errVal(f, "must be a %s of 0 or more, got %s", kind, n.Value)
			return 0, false
		}
		return uint64(v), true
	}
	v, ok := parseSize(n.Value)
	if !ok {
		p.errVal(f, "invalid %s %q: use a number of %s or a number with K, M or G (powers of 1024)", kind, n.Value, unit)
		return 0, false
	}
	return v, true
}

func parseSize(s string) (uint64, bool) {
	shift := 0
	if s != "" {
		switch s[len(s)-1] {
		case 'K', 'k':
			shift = 10
		case 'M', 'm':
			shift = 20
		case 'G', 'g':
			shift = 30
		}
	}
	if shift > 0 {
		s = s[:len(s)-1]
	}
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > math.MaxInt64>>shift {
		return 0, false
	}
	return v << shift, true
}

// octal reads a permission-like number. YAML reads an unquoted 022 as the
// integer 22 (or 18), never what the user meant, so the literal text is
// taken as octal whether quoted or not.
func (p *parser) octal(f field, hi uint64) (uint32, bool) {
	n := f.val
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!str") {
		p.errVal(f, "expected an octal number such as \"022\", got %s", what(n))
		return 0, false
	}
	s := n.Value
	if len(s) > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'O') {
		s = s[2:]
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || s == "" || s[0] == '+' {
		p.errVal(f, "invalid octal number %q: use the digits 0 to 7, e.g. \"022\"", n.Value)
		return 0, false
	}
	if v > hi {
		p.errVal(f, "must be at most %#o, got %s", hi, n.Value)
		return 0, false
	}
	return uint32(v), true
}

// choice reads a string that must be one of choices.
func (p *parser) choice(f field, choices ...string) (string, bool) {
	s, ok := p.str(f)
	if !ok {
		return "", false
	}
	for _, c := range choices {
		if s == c {
			return s, true
		}
	}
	list := strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
	p.errVal(f, "must be %s, got %q", list, s)
	return "", false
}

// maxSignal is the highest Linux signal number (SIGRTMAX).
const maxSignal = 64

func (p *parser) signal(f field) (syscall.Signal, bool) {
	n := f.val
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		v, ok := p.integer(f, 1, maxSignal)
		return syscall.Signal(v), ok
	}
	s, ok := p.str(f)
	if !ok {
		return 0, false
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		p.errVal(f, "unknown signal %q: use a name such as TERM or SIGHUP, or a number", s)
		return 0, false
	}
	return sig, true
}

// prefix reads an allow/deny entry: an address (a /32 or /128) or a CIDR
// prefix. IPv4-mapped IPv6 is turned into IPv4, as superd sees IPv4
// clients of a dual-stack socket as IPv4.
func (p *parser) prefix(f field) (netip.Prefix, bool) {
	s, ok := p.str(f)
	if !ok {
		return netip.Prefix{}, false
	}
	var addr netip.Addr
	var bits int
	if i := strings.IndexByte(s, '/'); i >= 0 {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			p.errVal(f, "invalid CIDR prefix %q: use an address such as 192.0.2.1 or 2001:db8::1, or a prefix such as 10.0.0.0/8", s)
			return netip.Prefix{}, false
		}
		addr, bits = pf.Addr(), pf.Bits()
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			p.errVal(f, "invalid address %q: use an address such as 192.0.2.1 or 2001:db8::1, or a prefix such as 10.0.0.0/8", s)
			return netip.Prefix{}, false
		}
		if a.Zone() != "" {
			p.errVal(f, "%q has a zone; allow and deny match addresses without one", s)
			return netip.Prefix{}, false
		}
		addr, bits = a, a.BitLen()
	}
	if addr.Is4In6() {
		if bits < 96 {
			p.errVal(f, "IPv4-mapped prefix %q must be /96 or longer", s)
			return netip.Prefix{}, false
		}
		addr, bits = addr.Unmap(), bits-96
	}
	return netip.PrefixFrom(addr, bits).Masked(), true
}

// window reads an access_times entry "HH:MM-HH:MM".
func (p *parser) window(f field) (TimeWindow, bool) {
	s, ok := p.str(f)
	if !ok {
		return TimeWindow{}, false
	}
	bad := func() (TimeWindow, bool) {
		p.errVal(f, "invalid time window %q: use HH:MM-HH:MM in local time, e.g. \"08:00-18:30\" (a window may wrap past midnight)", s)
		return TimeWindow{}, false
	}
	from, to, found := strings.Cut(s, "-")
	if !found {
		return bad()
	}
	start, ok1 := clock(strings.TrimSpace(from))
	end, ok2 := clock(strings.TrimSpace(to))
	if !ok1 || !ok2 {
		return bad()
	}
	if start == end {
		p.errVal(f, "time window %q starts where it ends", s)
		return TimeWindow{}, false
	}
	return TimeWindow{Start: start, End: end}, true
}

// clock parses HH:MM into minutes since midnight.
func clock(s string) (int, bool) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 || !digits(h) || !digits(m) {
		return 0, false
	}
	hh, _ := strconv.Atoi(h)
	mm, _ := strconv.Atoi(m)
	if hh > 23 || mm > 59 {
		return 0, false
	}
	return hh*60 + mm, true
}

func digits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// hostPort checks HOST:PORT with a numeric port in [minPort, 65535]. The
// host may be an IP literal or a name, and may be empty only if emptyHost.
func (p *parser) hostPort(f field, s string, emptyHost bool, minPort int) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		p.errVal(f, "invalid address %q: use HOST:PORT, e.g. 127.0.0.1:9750 or [::1]:9750", s)
		return false
	}
	n, err := strconv.Atoi(port)
	if err != nil || !digits(port) {
		p.errVal(f, "port %q in %q must be a number", port, s)
		return false
	}
	if n < minPort || n > 65535 {
		p.errVal(f, "port %d in %q must be between %d and 65535", n, s, minPort)
		return false
	}
	if host == "" {
		if !emptyHost {
			p.errVal(f, "%q has no host", s)
			return false
		}
		return true
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if !ValidHostname(host) {
		p.errVal(f, "host %q in %q is neither an IP address nor a host name", host, s)
		return false
	}
	return true
}

// ValidHostname reports whether h is a syntactically valid DNS host name
// (labels of letters, digits, '-' and '_', a trailing dot allowed). It
// checks form only; nothing is resolved.
func ValidHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// validEnvName says whether s can be an environment variable name that
// every shell and exec wrapper passes on.
func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
