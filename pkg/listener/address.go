package listener

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// maxPathLen and maxAbstractLen are the longest names a sockaddr_un holds
// (108 bytes of sun_path): a path needs its terminating NUL, and an abstract
// name its leading NUL plus, as golang.org/x/sys/unix encodes it, one byte
// more.
const (
	maxPathLen     = 107
	maxAbstractLen = 106
)

const wantSchemes = "tcp, tcp4, tcp6, udp, udp4, udp6, unix, unixgram, unixpacket"

// ParseAddress parses one `listen` string of SPEC §2.1. Host names are
// refused: a super-server starts before the network is fully up and must not
// wait on DNS to bind its sockets. Port names are looked up in /etc/services
// for the scheme's protocol. The error text names the faulty part and is
// meant to follow a file:line:col prefix.
func ParseAddress(s string) (Address, error) {
	name, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Address{}, fmt.Errorf("address %q has no scheme: write e.g. tcp://:13 or unix:///run/NAME.sock", s)
	}
	kind, family, ok := parseScheme(name)
	if !ok {
		return Address{}, fmt.Errorf("unknown scheme %q (want %s)", name, wantSchemes)
	}
	if family == Unix {
		return parseUnix(kind, rest)
	}
	return parseIP(name, kind, family, rest)
}

// parseScheme returns the socket kind of a scheme and the family it forces,
// 0 when the host's literal decides.
func parseScheme(name string) (Kind, Family, bool) {
	switch name {
	case "tcp":
		return Stream, 0, true
	case "tcp4":
		return Stream, IPv4, true
	case "tcp6":
		return Stream, IPv6, true
	case "udp":
		return Datagram, 0, true
	case "udp4":
		return Datagram, IPv4, true
	case "udp6":
		return Datagram, IPv6, true
	case "unix":
		return Stream, Unix, true
	case "unixgram":
		return Datagram, Unix, true
	case "unixpacket":
		return SeqPacket, Unix, true
	}
	return 0, 0, false
}

func parseUnix(kind Kind, rest string) (Address, error) {
	a := Address{Family: Unix, Kind: kind}
	if name, ok := strings.CutPrefix(rest, "@"); ok {
		switch {
		case name == "":
			return Address{}, errors.New("abstract socket name after @ is empty")
		case len(name) > maxAbstractLen:
			return Address{}, fmt.Errorf("abstract socket name is %d bytes, longer than the %d a UNIX socket address holds", len(name), maxAbstractLen)
		case strings.IndexByte(name, 0) >= 0:
			return Address{}, errors.New("abstract socket name contains a NUL byte")
		}
		a.Path, a.Abstract = name, true
		return a, nil
	}
	switch {
	case rest == "":
		return Address{}, errors.New("missing socket path: write unix:///run/NAME.sock or unix://@NAME")
	case rest[0] != '/':
		return Address{}, fmt.Errorf("socket path %q is not absolute: write unix:///PATH (three slashes)", rest)
	case len(rest) > maxPathLen:
		return Address{}, fmt.Errorf("socket path is %d bytes, longer than the %d a UNIX socket address holds", len(rest), maxPathLen)
	case strings.IndexByte(rest, 0) >= 0:
		return Address{}, errors.New("socket path contains a NUL byte")
	}
	a.Path = rest
	return a, nil
}

func parseIP(scheme string, kind Kind, family Family, rest string) (Address, error) {
	host, bracketed, port, err := splitHostPort(rest)
	if err != nil {
		return Address{}, err
	}
	proto := "tcp"
	if kind == Datagram {
		proto = "udp"
	}
	p, err := parsePort(proto, port)
	if err != nil {
		return Address{}, err
	}
	a := Address{Kind: kind, Port: p}
	if host == "" && !bracketed {
		switch family {
		case IPv4:
			a.Family, a.IP = IPv4, netip.IPv4Unspecified()
		case IPv6:
			a.Family, a.IP = IPv6, netip.IPv6Unspecified()
		default:
			a.Family, a.IP, a.DualStack = IPv6, netip.IPv6Unspecified(), true
		}
		return a, nil
	}
	ip, err := parseHost(host, bracketed)
	if err != nil {
		return Address{}, err
	}
	if ip.Is4In6() {
		if family == IPv6 {
			return Address{}, fmt.Errorf("IPv4-mapped host [%s] cannot be used with %s: write %s4://%s:%d", ip, scheme, proto, ip.Unmap(), p)
		}
		ip = ip.Unmap()
	}
	switch {
	case ip.Is4() && family == IPv6:
		return Address{}, fmt.Errorf("%s cannot listen on IPv4 address %s (use %s4 or %s)", scheme, ip, proto, proto)
	case ip.Is6() && family == IPv4:
		return Address{}, fmt.Errorf("%s cannot listen on IPv6 address [%s] (use %s6 or %s)", scheme, ip, proto, proto)
	case ip.Is4():
		a.Family = IPv4
	default:
		a.Family = IPv6
		// [::] under the plain scheme means what `tcp://:PORT` means, as it
		// does for systemd's BindIPv6Only=both and Go's net.Listen("tcp").
		a.DualStack = family == 0 && ip == netip.IPv6Unspecified()
	}
	a.IP = ip
	return a, nil
}

// splitHostPort splits HOST:PORT, [HOST]:PORT or :PORT, with messages that
// say what to write instead.
func splitHostPort(s string) (host string, bracketed bool, port string, err error) {
	if s == "" {
		return "", false, "", errors.New("missing host and port: write e.g. :13, 127.0.0.1:13 or [::1]:13")
	}
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", false, "", fmt.Errorf("missing ']' after IPv6 host in %q", s)
		}
		host, after := s[1:end], s[end+1:]
		if host == "" {
			return "", false, "", errors.New("empty IPv6 host []: write [::] or leave the host out")
		}
		var ok bool
		if port, ok = strings.CutPrefix(after, ":"); !ok {
			if after == "" {
				return "", false, "", fmt.Errorf("missing port after [%s]", host)
			}
			return "", false, "", fmt.Errorf("unexpected %q after [%s]: want :PORT", after, host)
		}
		return host, true, port, nil
	}
	colon := strings.LastIndexByte(s, ':')
	if colon < 0 {
		return "", false, "", fmt.Errorf("missing port in %q: write HOST:PORT or :PORT", s)
	}
	host, port = s[:colon], s[colon+1:]
	if strings.IndexByte(host, ':') >= 0 {
		return "", false, "", fmt.Errorf("IPv6 host %s must be in brackets: [%s]:%s", host, host, port)
	}
	return host, false, port, nil
}

func parseHost(host string, bracketed bool) (netip.Addr, error) {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		switch {
		case bracketed:
			return netip.Addr{}, fmt.Errorf("invalid IPv6 address [%s]", host)
		case strings.Trim(host, "0123456789.") == "":
			return netip.Addr{}, fmt.Errorf("invalid IPv4 address %q", host)
		case strings.IndexByte(host, '%') >= 0:
			return netip.Addr{}, fmt.Errorf("invalid host %q: a %%zone applies only to IPv6 link-local addresses, written [fe80::1%%eth0]", host)
		}
		return netip.Addr{}, fmt.Errorf("host %q is not an IP address: superd binds without DNS, so write an IP literal such as 127.0.0.1 or [::1], or leave the host out to listen on all addresses", host)
	}
	switch {
	case bracketed && ip.Is4():
		return netip.Addr{}, fmt.Errorf("IPv4 address %s must not be in brackets", host)
	case ip.Zone() != "" && !ip.IsLinkLocalUnicast() && !ip.IsLinkLocalMulticast():
		return netip.Addr{}, fmt.Errorf("zone %%%s applies only to link-local addresses (fe80::/10), not to %s", ip.Zone(), ip.WithZone(""))
	}
	return ip, nil
}

// parsePort accepts a decimal port or a service name of proto.
func parsePort(proto, s string) (uint16, error) {
	if s == "" {
		return 0, errors.New("missing port")
	}
	if strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("port %s out of range: must be 1-65535", s)
		}
		return uint16(n), nil
	}
	if !isServiceName(s) {
		return 0, fmt.Errorf("invalid port %q: want a number or a service name from /etc/services", s)
	}
	n, err := net.LookupPort(proto, s)
	if err != nil {
		return 0, fmt.Errorf("unknown port %q: no %s service of that name in /etc/services", s, proto)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("service %q has port %d: must be 1-65535", s, n)
	}
	return uint16(n), nil
}

// isServiceName reports whether s has the shape of an /etc/services name, so
// that garbage is reported as such rather than as an unknown service.
func isServiceName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case (c == '-' || c == '_' || c == '.' || c == '+') && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// String returns the canonical form of a: the scheme names the family
// (tcp4, tcp6) unless the socket is dual-stack (tcp://[::]:P), ports are
// numbers, and ParseAddress(a.String()) returns a again. Equal sockets thus
// print equally, whichever way the configuration spelled them.
func (a Address) String() string {
	switch a.Family {
	case IPv4:
		return a.Network() + "://" + a.IP.String() + ":" + strconv.Itoa(int(a.Port))
	case IPv6:
		return a.Network() + "://[" + a.IP.String() + "]:" + strconv.Itoa(int(a.Port))
	case Unix:
		if a.Abstract {
			return a.Network() + "://@" + a.Path
		}
		return a.Network() + "://" + a.Path
	}
	return "invalid address"
}

// Network returns the scheme of a's canonical form, which is also the
// network name Go's net package uses for the same socket ("tcp" for a
// dual-stack [::], "tcp4", "udp6", "unixgram", ...); "" for an invalid
// Address.
func (a Address) Network() string {
	var base string
	switch {
	case a.Family == Unix && a.Kind == Stream:
		return "unix"
	case a.Family == Unix && a.Kind == Datagram:
		return "unixgram"
	case a.Family == Unix && a.Kind == SeqPacket:
		return "unixpacket"
	case a.Kind == Stream:
		base = "tcp"
	case a.Kind == Datagram:
		base = "udp"
	default:
		return ""
	}
	switch {
	case a.Family == IPv4:
		return base + "4"
	case a.Family == IPv6 && !a.DualStack:
		return base + "6"
	case a.Family == IPv6:
		return base
	}
	return ""
}

// isIP reports whether a is an IPv4 or IPv6 socket.
func (a Address) isIP() bool { return a.Family == IPv4 || a.Family == IPv6 }

// isTCP reports whether a is a TCP socket.
func (a Address) isTCP() bool { return a.isIP() && a.Kind == Stream }

// isUDP reports whether a is a UDP socket.
func (a Address) isUDP() bool { return a.isIP() && a.Kind == Datagram }

// isSocketFile reports whether a is a UNIX socket with a file system path.
func (a Address) isSocketFile() bool { return a.Family == Unix && !a.Abstract }

// String returns the name SPEC and socket(7) use for the kind.
func (k Kind) String() string {
	switch k {
	case Stream:
		return "stream"
	case Datagram:
		return "datagram"
	case SeqPacket:
		return "seqpacket"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// String returns the family's usual name, for messages.
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	case Unix:
		return "unix"
	}
	return "Family(" + strconv.Itoa(int(f)) + ")"
}
