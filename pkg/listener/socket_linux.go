package listener

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Open creates the socket of a, applies every option of o, binds it and,
// for stream and seqpacket sockets, listens with o.Backlog (DefaultBacklog
// when 0). The fd is O_CLOEXEC, so no child inherits it by accident, and
// O_NONBLOCK, since an accept after readiness may still find nothing.
//
// Options go on before bind, where SO_REUSEPORT, IP_FREEBIND,
// SO_BINDTODEVICE and IPV6_V6ONLY take effect. For a file-system UNIX
// socket, Open creates missing parent directories (mode 0755), replaces a
// stale socket file at the path (never any other kind of file), and the
// socket gets its file mode and owner before listen, so no client
// connects while the file is still more open than configured. An IPv6
// socket is IPv6-only unless a is DualStack and o.IPv6Only is false,
// whatever net.ipv6.bindv6only says.
//
// Open checks o.Validate(a) first, so a hand-built Options cannot put an
// option on a socket it does not fit. Port 0 binds an ephemeral port
// (LocalAddress tells which); ParseAddress never yields it. On error nothing
// is left open or created, and the error reads "listen ADDRESS: ..." and
// wraps the errno (errors.Is(err, unix.EADDRINUSE) holds).
func Open(a Address, o Options) (int, error) {
	fd, err := open(a, o)
	if err != nil {
		return -1, fmt.Errorf("listen %s: %w", a, err)
	}
	return fd, nil
}

func open(a Address, o Options) (int, error) {
	if err := o.Validate(a); err != nil {
		return -1, err
	}
	a = Bound(a, o)
	sa, err := sockaddr(a)
	if err != nil {
		return -1, err
	}
	domain, typ := unix.AF_UNIX, unix.SOCK_STREAM
	switch a.Family {
	case IPv4:
		domain = unix.AF_INET
	case IPv6:
		domain = unix.AF_INET6
	}
	switch a.Kind {
	case Datagram:
		typ = unix.SOCK_DGRAM
	case SeqPacket:
		typ = unix.SOCK_SEQPACKET
	}
	fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if err := setup(fd, a, o, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Bound is the address a socket for a is bound to. It is a itself, but
// for a family-less wildcard (`tcp://:PORT`, `udp://[::]:PORT`) on a
// kernel without IPv6 (booted with ipv6.disable=1, where socket(AF_INET6)
// fails): there, as systemd binds ListenStream=PORT and Go's
// net.Listen("tcp", ":PORT"), the socket is the IPv4 wildcard
// 0.0.0.0:PORT. With ipv6_only set it stays IPv6 and fails to open.
func Bound(a Address, o Options) Address {
	if a.DualStack && !o.IPv6Only && !kernelHasIPv6() {
		a.Family, a.IP, a.DualStack = IPv4, netip.IPv4Unspecified(), false
	}
	return a
}

// kernelHasIPv6 reports whether the kernel can make IPv6 sockets at all.
// IPv6 switched off by sysctl (disable_ipv6) still can: [::] binds and
// serves IPv4 clients; only ::1 and other IPv6 addresses are missing.
var kernelHasIPv6 = sync.OnceValue(func() bool {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err != unix.EAFNOSUPPORT
	}
	unix.Close(fd)
	return true
})

// setup turns a fresh socket into a listening one; the caller closes fd if
// it fails, and setup removes the socket file it may have created.
func setup(fd int, a Address, o Options, sa unix.Sockaddr) error {
	if err := setOptions(fd, a, o); err != nil {
		return err
	}
	if a.isSocketFile() {
		// As systemd does for ListenStream=/run/NAME/x.sock: /run is
		// empty at boot, and the service's directory may not exist yet.
		if err := os.MkdirAll(filepath.Dir(a.Path), 0o755); err != nil {
			return err
		}
		if err := removeSocketFile(a.Path); err != nil {
			return err
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return os.NewSyscallError("bind", err)
	}
	if err := finish(fd, a, o); err != nil {
		if a.isSocketFile() {
			removeSocketFile(a.Path)
		}
		return err
	}
	return nil
}

// finish sets a bound socket file's mode and owner, then listens.
func finish(fd int, a Address, o Options) error {
	if a.isSocketFile() {
		if err := setFileMode(a.Path, o); err != nil {
			return err
		}
	}
	if a.Kind == Datagram {
		return nil
	}
	backlog := o.Backlog
	if backlog == 0 {
		backlog = DefaultBacklog
	}
	return os.NewSyscallError("listen", unix.Listen(fd, int(backlog)))
}

func sockaddr(a Address) (unix.Sockaddr, error) {
	switch a.Family {
	case IPv4:
		return &unix.SockaddrInet4{Port: int(a.Port), Addr: a.IP.As4()}, nil
	case IPv6:
		zone, err := zoneIndex(a.IP.Zone())
		if err != nil {
			return nil, err
		}
		return &unix.SockaddrInet6{Port: int(a.Port), ZoneId: zone, Addr: a.IP.As16()}, nil
	case Unix:
		if a.Abstract {
			// golang.org/x/sys/unix turns a leading '@' into the NUL byte
			// of the abstract namespace.
			return &unix.SockaddrUnix{Name: "@" + a.Path}, nil
		}
		return &unix.SockaddrUnix{Name: a.Path}, nil
	}
	return nil, errors.New("invalid address")
}

// zoneIndex resolves a zone to the interface index bind(2) wants as the
// scope id; a number is taken as an index, as in RFC 4007 text forms.
func zoneIndex(zone string) (uint32, error) {
	if zone == "" {
		return 0, nil
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index), nil
	}
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil && n > 0 {
		return uint32(n), nil
	}
	return 0, fmt.Errorf("zone %%%s: no such network interface", zone)
}

// sockopts applies socket options one after another and keeps the first
// error, so that setOptions reads as the list of options it is.
type sockopts struct {
	fd  int
	err error
}

func (s *sockopts) int(level, opt int, name string, value int) {
	if s.err != nil {
		return
	}
	if err := unix.SetsockoptInt(s.fd, level, opt, value); err != nil {
		s.err = os.NewSyscallError("setsockopt "+name, err)
	}
}

func (s *sockopts) bool(level, opt int, name string, on bool) {
	if on {
		s.int(level, opt, name, 1)
	}
}

// buffer sets a buffer size with the *FORCE option first, as systemd does:
// superd normally runs with CAP_NET_ADMIN, and without it the kernel would
// silently cap the size at net.core.[rw]mem_max.
func (s *sockopts) buffer(force, opt int, name string, size int) {
	if s.err != nil || size == 0 {
		return
	}
	err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, force, size)
	if errors.Is(err, unix.EPERM) {
		err = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, opt, size)
	}
	if err != nil {
		s.err = os.NewSyscallError("setsockopt "+name, err)
	}
}

func setOptions(fd int, a Address, o Options) error {
	s := &sockopts{fd: fd}
	v6 := a.Family == IPv6
	// A dual-stack socket carries IPv4 traffic too, which the IPv4-level
	// options govern.
	v4 := a.Family == IPv4 || (v6 && a.DualStack && !o.IPv6Only)
	const (
		sol  = unix.SOL_SOCKET
		ip4  = unix.IPPROTO_IP
		ip6  = unix.IPPROTO_IPV6
		tcp  = unix.IPPROTO_TCP
		secs = time.Second
	)

	// Every TCP server sets SO_REUSEADDR, or a restart fails while old
	// connections sit in TIME_WAIT.
	s.bool(sol, unix.SO_REUSEADDR, "SO_REUSEADDR", a.isTCP())
	if v6 {
		s.int(ip6, unix.IPV6_V6ONLY, "IPV6_V6ONLY", boolInt(!v4))
	}
	s.bool(sol, unix.SO_REUSEPORT, "SO_REUSEPORT", o.ReusePort)
	if v6 {
		s.bool(ip6, unix.IPV6_FREEBIND, "IPV6_FREEBIND", o.FreeBind)
		s.bool(ip6, unix.IPV6_TRANSPARENT, "IPV6_TRANSPARENT", o.Transparent)
	} else {
		s.bool(ip4, unix.IP_FREEBIND, "IP_FREEBIND", o.FreeBind)
		s.bool(ip4, unix.IP_TRANSPARENT, "IP_TRANSPARENT", o.Transparent)
	}
	if o.BindToDevice != "" && s.err == nil {
		if err := unix.SetsockoptString(fd, sol, unix.SO_BINDTODEVICE, o.BindToDevice); err != nil {
			s.err = fmt.Errorf("bind_to_device %s: %w", o.BindToDevice, os.NewSyscallError("setsockopt SO_BINDTODEVICE", err))
		}
	}
	s.bool(sol, unix.SO_KEEPALIVE, "SO_KEEPALIVE", o.KeepAlive)
	if o.KeepAliveTime != 0 {
		s.int(tcp, unix.TCP_KEEPIDLE, "TCP_KEEPIDLE", int(o.KeepAliveTime/secs))
	}
	if o.KeepAliveIntvl != 0 {
		s.int(tcp, unix.TCP_KEEPINTVL, "TCP_KEEPINTVL", int(o.KeepAliveIntvl/secs))
	}
	if o.KeepAliveCount != 0 {
		s.int(tcp, unix.TCP_KEEPCNT, "TCP_KEEPCNT", int(o.KeepAliveCount))
	}
	s.bool(tcp, unix.TCP_NODELAY, "TCP_NODELAY", o.NoDelay)
	if o.DeferAccept != 0 {
		s.int(tcp, unix.TCP_DEFER_ACCEPT, "TCP_DEFER_ACCEPT", int(o.DeferAccept/secs))
	}
	s.buffer(unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, "SO_RCVBUF", int(o.ReceiveBuffer))
	s.buffer(unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, "SO_SNDBUF", int(o.SendBuffer))
	if o.Mark != 0 {
		s.int(sol, unix.SO_MARK, "SO_MARK", int(o.Mark))
	}
	if o.IPTOS != 0 {
		if v6 {
			s.int(ip6, unix.IPV6_TCLASS, "IPV6_TCLASS", int(o.IPTOS))
		}
		if v4 {
			s.int(ip4, unix.IP_TOS, "IP_TOS", int(o.IPTOS))
		}
	}
	if o.IPTTL != 0 {
		if v6 {
			s.int(ip6, unix.IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS", int(o.IPTTL))
		}
		if v4 {
			s.int(ip4, unix.IP_TTL, "IP_TTL", int(o.IPTTL))
		}
	}
	if o.Priority != 0 {
		s.int(sol, unix.SO_PRIORITY, "SO_PRIORITY", int(o.Priority))
	}
	s.bool(sol, unix.SO_BROADCAST, "SO_BROADCAST", o.Broadcast)
	s.bool(sol, unix.SO_PASSCRED, "SO_PASSCRED", o.PassCredentials)
	return s.err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// setFileMode gives a freshly bound socket file its mode and owner through
// an O_PATH descriptor rather than by path, so that a symbolic link swapped
// in after bind cannot make superd (usually root) chmod another file.
func setFileMode(path string, o Options) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("%s was replaced by something other than a socket right after bind", path)
	}
	if o.OwnerUID != NoOwner || o.OwnerGID != NoOwner {
		if err := unix.Fchownat(fd, "", o.OwnerUID, o.OwnerGID, unix.AT_EMPTY_PATH); err != nil {
			return &os.PathError{Op: "chown", Path: path, Err: err}
		}
	}
	mode := o.FileMode
	if mode == 0 {
		mode = 0o666
	}
	if err := chmodFD(fd, mode); err != nil {
		return &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	return nil
}

// chmodFD changes the mode of the file an O_PATH fd refers to: with
// fchmodat2 (Linux 6.6) directly, before that through /proc/self/fd, which
// reopens that very file and not whatever the path names now.
func chmodFD(fd int, mode uint32) error {
	err := unix.Fchmodat(fd, "", mode, unix.AT_EMPTY_PATH)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		err = unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
	}
	return err
}

// LocalAddress returns the address a socket is bound to, as ParseAddress
// would return it for the same socket: with the port the kernel chose for
// port 0, the zone of a link-local address by interface name, and DualStack
// for an [::] socket whose IPV6_V6ONLY is off. It serves tests and matching
// inherited sockets (LISTEN_FDS) against configured addresses.
func LocalAddress(fd int) (Address, error) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return Address{}, os.NewSyscallError("getsockopt SO_TYPE", err)
	}
	var kind Kind
	switch typ {
	case unix.SOCK_STREAM:
		kind = Stream
	case unix.SOCK_DGRAM:
		kind = Datagram
	case unix.SOCK_SEQPACKET:
		kind = SeqPacket
	default:
		return Address{}, fmt.Errorf("socket type %d is not stream, datagram or seqpacket", typ)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return Address{}, os.NewSyscallError("getsockname", err)
	}
	var a Address
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		a = Address{Family: IPv4, Kind: kind, IP: netip.AddrFrom4(sa.Addr), Port: uint16(sa.Port)}
	case *unix.SockaddrInet6:
		a = Address{Family: IPv6, Kind: kind, IP: netip.AddrFrom16(sa.Addr), Port: uint16(sa.Port)}
		if sa.ZoneId != 0 {
			a.IP = a.IP.WithZone(zoneName(sa.ZoneId))
		}
		if a.IP.IsUnspecified() {
			v6only, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
			if err != nil {
				return Address{}, os.NewSyscallError("getsockopt IPV6_V6ONLY", err)
			}
			a.DualStack = v6only == 0
		}
	case *unix.SockaddrUnix:
		// An unbound socket's name is empty, which x/sys/unix reports as
		// the abstract name "@".
		if sa.Name == "" || sa.Name == "@" {
			return Address{}, errors.New("UNIX socket is not bound to a name")
		}
		a = Address{Family: Unix, Kind: kind, Path: sa.Name}
		if name, ok := cutAbstract(sa.Name); ok {
			a.Path, a.Abstract = name, true
		}
	default:
		return Address{}, fmt.Errorf("socket family %T is not IPv4, IPv6 or unix", sa)
	}
	if a.Network() == "" {
		return Address{}, fmt.Errorf("%s socket of family %s is not supported", kind, a.Family)
	}
	return a, nil
}

// cutAbstract strips the '@' golang.org/x/sys/unix puts in place of the
// abstract namespace's leading NUL.
func cutAbstract(name string) (string, bool) {
	if len(name) > 0 && name[0] == '@' {
		return name[1:], true
	}
	return name, false
}

func zoneName(index uint32) string {
	if ifi, err := net.InterfaceByIndex(int(index)); err == nil {
		return ifi.Name
	}
	return strconv.FormatUint(uint64(index), 10)
}
