package importer

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/superd/superd/pkg/config"
)

// addrForm is what one only_from or no_access value of xinetd is.
type addrForm int

const (
	formPrefixes      addrForm = iota // numeric, CIDR or factorized: exact prefixes
	formTCPD                          // "192.168.1.": tcpd's form, which xinetd does not read
	formLocalhost                     // the host name localhost
	formHost                          // a host name: xinetd matched it by reverse lookup
	formDomain                        // ".example.com": likewise, by domain
	formInvalid                       // nothing xinetd can read
	formZone                          // an IPv6 address with a zone
	formShort                         // "10.1": a shortened dotted address
	formFactorizedBad                 // a factorized address xinetd rejects
)

// parseXinetdAddr reads an only_from or no_access value the way xinetd's
// address parsers do, in their order: numeric (a dotted quad whose
// trailing zero bytes are wildcards, 0.0.0.0 and :: match everything),
// host name, explicit mask (a.b.c.d/n, v6/n), factorized (a.b.{c,d}).
func parseXinetdAddr(s string) ([]netip.Prefix, addrForm) {
	switch {
	case strings.Contains(s, "{"):
		return factorized(s)
	case strings.Contains(s, "/"):
		a, bits, _ := strings.Cut(s, "/")
		addr, err := netip.ParseAddr(a)
		n, err2 := strconv.Atoi(bits)
		if err != nil || err2 != nil || !digitsOnly(bits) || n < 0 || n > addr.BitLen() {
			return nil, formInvalid
		}
		if addr.Zone() != "" {
			return nil, formZone
		}
		return []netip.Prefix{unmapPrefix(netip.PrefixFrom(addr, n).Masked())}, formPrefixes
	}
	if addr, err := netip.ParseAddr(s); err == nil {
		switch {
		case addr.Zone() != "":
			return nil, formZone
		case addr.Is4():
			return []netip.Prefix{wildcardV4(addr)}, formPrefixes
		case addr == netip.IPv6Unspecified():
			return []netip.Prefix{netip.PrefixFrom(addr, 0)}, formPrefixes
		}
		return []netip.Prefix{unmapPrefix(netip.PrefixFrom(addr, 128))}, formPrefixes
	}
	if strings.Trim(s, "0123456789.") == "" {
		return tcpdPrefix(s)
	}
	switch {
	case strings.EqualFold(s, "localhost"):
		return []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}, formLocalhost
	case s[0] == '.' && config.ValidHostname(s[1:]):
		return nil, formDomain
	case config.ValidHostname(s):
		return nil, formHost
	}
	return nil, formInvalid
}

// wildcardV4 is xinetd's numeric rule: the trailing zero bytes of an IPv4
// address are wildcards (10.0.0.0 is 10.0.0.0/8, 0.0.0.0 everything).
func wildcardV4(a netip.Addr) netip.Prefix {
	b := a.As4()
	bits := 32
	for i := 3; i >= 0 && b[i] == 0; i-- {
		bits -= 8
	}
	return netip.PrefixFrom(a, bits)
}

// unmapPrefix turns an IPv4-mapped prefix into IPv4, as superd compares
// IPv4 clients of dual-stack sockets as plain IPv4.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// tcpdPrefix reads "a.b.c." (tcpd's hosts.allow form) as a prefix of the
// bytes written; xinetd itself does not read it.
func tcpdPrefix(s string) ([]netip.Prefix, addrForm) {
	if !strings.HasSuffix(s, ".") {
		return nil, formShort
	}
	parts := strings.Split(strings.TrimSuffix(s, "."), ".")
	if len(parts) < 1 || len(parts) > 3 {
		return nil, formInvalid
	}
	var b [4]byte
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || p == "" || v > 255 {
			return nil, formInvalid
		}
		b[i] = byte(v)
	}
	return []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4(b), 8*len(parts))}, formTCPD
}

// factorized reads a.b.{c,d}: one prefix per value, of the bytes written
// and the value (128.138.{200,201} is 128.138.200.0/24 and .201.0/24).
func factorized(s string) ([]netip.Prefix, addrForm) {
	head, list, ok := strings.Cut(s, "{")
	list, ok2 := strings.CutSuffix(list, "}")
	if !ok || !ok2 || !strings.HasSuffix(head, ".") || strings.ContainsAny(list, "{}") {
		return nil, formFactorizedBad
	}
	parts := strings.Split(strings.TrimSuffix(head, "."), ".")
	if len(parts) > 3 {
		return nil, formFactorizedBad
	}
	var b [4]byte
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || !digitsOnly(p) || v > 255 {
			return nil, formFactorizedBad
		}
		b[i] = byte(v)
	}
	n := len(parts)
	var out []netip.Prefix
	for _, x := range strings.Split(list, ",") {
		v, err := strconv.Atoi(x)
		if err != nil || !digitsOnly(x) || v > 255 {
			return nil, formFactorizedBad
		}
		b[n] = byte(v)
		out = append(out, netip.PrefixFrom(netip.AddrFrom4(b), 8*(n+1)))
	}
	return out, formPrefixes
}

// formatPrefix writes a prefix for allow/deny: a single address plainly.
func formatPrefix(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// xinetdWindow converts an access_times interval. xinetd reads
// H:MM-H:MM (hours 0-23), refuses a start not before the end, and accepts
// connections at both bounds; superd's windows end before their last
// minute, so the end moves one minute on. ok is false for what xinetd
// refuses; whole is true for a window that covers the day.
func xinetdWindow(s string) (win string, whole, ok bool) {
	from, to, found := strings.Cut(s, "-")
	if !found {
		return "", false, false
	}
	start, ok1 := clockMinutes(from)
	end, ok2 := clockMinutes(to)
	if !ok1 || !ok2 || start >= end {
		return "", false, false
	}
	end = (end + 1) % (24 * 60)
	if end == start {
		return "", true, true
	}
	return fmt.Sprintf("%02d:%02d-%02d:%02d", start/60, start%60, end/60, end%60), false, true
}

func clockMinutes(s string) (int, bool) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || !digitsOnly(h) || !digitsOnly(m) || len(h) > 2 || len(m) > 2 {
		return 0, false
	}
	hh, _ := strconv.Atoi(h)
	mm, _ := strconv.Atoi(m)
	if hh > 23 || mm > 59 {
		return 0, false
	}
	return hh*60 + mm, true
}
