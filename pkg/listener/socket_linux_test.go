package listener

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/superd/superd/internal/testport"
)

// ioTimeout bounds every wait on a socket; it is a deadline, never a sleep.
const ioTimeout = 5 * time.Second

// socketDir returns a fresh directory with a short path: t.TempDir embeds the
// test name, which can push a socket path past the 107 bytes of sun_path.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "superd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

var abstractSeq atomic.Int64

// abstractName is unique per call and per test process, since the abstract
// namespace is shared by every process in the network namespace.
func abstractName() string {
	return fmt.Sprintf("superd-test-%d-%d", os.Getpid(), abstractSeq.Add(1))
}

// testAddress parses a listen string for a test: IP ports become 0 so that
// the kernel picks a free one, DIR in a path becomes a fresh directory and
// NAME after @ a unique abstract name.
func testAddress(t *testing.T, s string) Address {
	t.Helper()
	if before, after, ok := strings.Cut(s, "DIR"); ok {
		s = before + socketDir(t) + after
	}
	s = strings.Replace(s, "@NAME", "@"+abstractName(), 1)
	a := mustParse(t, s)
	if a.Family == IPv6 && !testport.IPv6Loopback() {
		t.Skip("IPv6 is disabled on this host (::1 cannot be bound)")
	}
	if a.Family != Unix {
		a.Port = 0
	}
	return a
}

func mustParse(t *testing.T, s string) Address {
	t.Helper()
	a, err := ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// openT opens a and closes the fd when the test ends.
func openT(t *testing.T, a Address, o Options) int {
	t.Helper()
	fd, err := Open(a, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", a, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func localT(t *testing.T, fd int) Address {
	t.Helper()
	a, err := LocalAddress(fd)
	if err != nil {
		t.Fatalf("LocalAddress: %v", err)
	}
	return a
}

// waitReadable waits until fd has something to read or accept.
func waitReadable(t *testing.T, fd int) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("fd %d not readable within %v", fd, ioTimeout)
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		if n > 0 {
			return
		}
	}
}

// dialTarget is how Go's net package reaches the socket bound at a from
// host, an IP literal for IP sockets.
func dialTarget(a Address, host string) (network, address string) {
	switch {
	case a.Family == Unix && a.Abstract:
		return a.Network(), "@" + a.Path
	case a.Family == Unix:
		return a.Network(), a.Path
	case a.Kind == Datagram:
		return "udp", net.JoinHostPort(host, strconv.Itoa(int(a.Port)))
	}
	return "tcp", net.JoinHostPort(host, strconv.Itoa(int(a.Port)))
}

// exchange connects to the socket fd from host, sends a message and reads it
// on the server side: through an accepted connection for stream and
// seqpacket sockets, straight from fd for datagram ones.
func exchange(t *testing.T, fd int, host string) {
	t.Helper()
	a := localT(t, fd)
	network, address := dialTarget(a, host)
	c, err := net.DialTimeout(network, address, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, address, err)
	}
	defer c.Close()
	msg := []byte("ping from " + host)
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write to %s: %v", address, err)
	}
	waitReadable(t, fd)
	from := fd
	if a.Kind != Datagram {
		cfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		if err != nil {
			t.Fatalf("accept on %s: %v", a, err)
		}
		defer unix.Close(cfd)
		from = cfd
		waitReadable(t, cfd)
	}
	buf := make([]byte, 64)
	n, err := unix.Read(from, buf)
	if err != nil {
		t.Fatalf("read on %s: %v", a, err)
	}
	if !bytes.Equal(buf[:n], msg) {
		t.Fatalf("read %q on %s, want %q", buf[:n], a, msg)
	}
}

func TestOpenBindsAndServesEveryListenForm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		listen string
		from   []string // client hosts for IP sockets
	}{
		{"tcp on 127.0.0.1", "tcp://127.0.0.1:1", []string{"127.0.0.1"}},
		{"tcp on another loopback address", "tcp://127.0.0.2:1", []string{"127.0.0.2"}},
		{"tcp4 on 0.0.0.0", "tcp4://:1", []string{"127.0.0.1"}},
		{"tcp6 on ::1", "tcp6://[::1]:1", []string{"::1"}},
		{"tcp6 on [::]", "tcp6://:1", []string{"::1"}},
		{"dual-stack tcp is reached over IPv4 and IPv6", "tcp://:1", []string{"127.0.0.1", "::1"}},
		{"dual-stack tcp written [::] is reached over both", "tcp://[::]:1", []string{"127.0.0.1", "::1"}},
		{"tcp on an IPv4-mapped host is plain IPv4", "tcp://[::ffff:127.0.0.1]:1", []string{"127.0.0.1"}},
		{"udp on 127.0.0.1", "udp://127.0.0.1:1", []string{"127.0.0.1"}},
		{"udp4 on 0.0.0.0", "udp4://:1", []string{"127.0.0.1"}},
		{"udp6 on ::1", "udp6://[::1]:1", []string{"::1"}},
		{"udp6 on [::]", "udp6://:1", []string{"::1"}},
		{"dual-stack udp is reached over IPv4 and IPv6", "udp://:1", []string{"127.0.0.1", "::1"}},
		{"unix stream socket file", "unix://DIR/s", nil},
		{"unix datagram socket file", "unixgram://DIR/g", nil},
		{"unix seqpacket socket file", "unixpacket://DIR/p", nil},
		{"abstract unix stream socket", "unix://@NAME", nil},
		{"abstract unix datagram socket", "unixgram://@NAME", nil},
		{"abstract unix seqpacket socket", "unixpacket://@NAME", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := testAddress(t, tt.listen)
			fd := openT(t, a, unset())
			got := localT(t, fd)
			if a.Family != Unix {
				if got.Port == 0 {
					t.Fatalf("LocalAddress = %s: no port", got)
				}
				a.Port = got.Port
			}
			if got != a {
				t.Errorf("LocalAddress = %#v, want %#v", got, a)
			}
			if a.Family == Unix {
				exchange(t, fd, "")
			}
			for _, host := range tt.from {
				exchange(t, fd, host)
			}
		})
	}
}

// TestIPv6OnlyRefusesIPv4 is not parallel: it expects a connection to
// 127.0.0.1:PORT to be refused, which a parallel test that happens to get
// the same port for an IPv4 socket would spoil.
func TestIPv6OnlyRefusesIPv4(t *testing.T) {
	tests := []struct {
		name   string
		listen string
		o      Options
	}{
		{"dual-stack tcp with ipv6_only", "tcp://:1", with(func(o *Options) { o.IPv6Only = true })},
		{"tcp6 on [::]", "tcp6://:1", unset()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd := openT(t, testAddress(t, tt.listen), tt.o)
			exchange(t, fd, "::1")
			port := strconv.Itoa(int(localT(t, fd).Port))
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, ioTimeout)
			if err == nil {
				c.Close()
				t.Fatalf("connected to 127.0.0.1:%s, want it refused", port)
			}
			if !errors.Is(err, unix.ECONNREFUSED) {
				t.Fatalf("dial 127.0.0.1:%s: %v, want connection refused", port, err)
			}
		})
	}
}

func TestOpenedSocketsAreCloseOnExecAndNonBlocking(t *testing.T) {
	t.Parallel()
	for _, listen := range []string{"tcp://:1", "udp4://127.0.0.1:1", "unix://DIR/s", "unixgram://@NAME", "unixpacket://@NAME"} {
		t.Run(listen, func(t *testing.T) {
			t.Parallel()
			fd := openT(t, testAddress(t, listen), unset())
			fdFlags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
			if err != nil {
				t.Fatal(err)
			}
			if fdFlags&unix.FD_CLOEXEC == 0 {
				t.Error("FD_CLOEXEC is not set")
			}
			flFlags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
			if err != nil {
				t.Fatal(err)
			}
			if flFlags&unix.O_NONBLOCK == 0 {
				t.Error("O_NONBLOCK is not set")
			}
		})
	}
}

type sockopt struct {
	level, opt int
	name       string
	want       int
}

func TestOpenAppliesSocketOptions(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("SO_MARK, SO_*BUFFORCE and IP_TRANSPARENT need CAP_NET_ADMIN; run as root")
	}
	const (
		sol = unix.SOL_SOCKET
		ip4 = unix.IPPROTO_IP
		ip6 = unix.IPPROTO_IPV6
		tcp = unix.IPPROTO_TCP
	)
	tests := []struct {
		name   string
		listen string
		o      Options
		want   []sockopt
	}{
		{"tcp sets SO_REUSEADDR and nothing else by default", "tcp4://127.0.0.1:1", unset(), []sockopt{
			{sol, unix.SO_REUSEADDR, "SO_REUSEADDR", 1},
			{sol, unix.SO_REUSEPORT, "SO_REUSEPORT", 0},
			{sol, unix.SO_KEEPALIVE, "SO_KEEPALIVE", 0},
			{tcp, unix.TCP_NODELAY, "TCP_NODELAY", 0},
			{sol, unix.SO_MARK, "SO_MARK", 0},
		}},
		{"udp leaves SO_REUSEADDR off", "udp4://127.0.0.1:1", unset(), []sockopt{
			{sol, unix.SO_REUSEADDR, "SO_REUSEADDR", 0},
		}},
		{"dual-stack tcp has IPV6_V6ONLY off", "tcp://:1", unset(), []sockopt{
			{ip6, unix.IPV6_V6ONLY, "IPV6_V6ONLY", 0},
		}},
		{"dual-stack udp has IPV6_V6ONLY off", "udp://:1", unset(), []sockopt{
			{ip6, unix.IPV6_V6ONLY, "IPV6_V6ONLY", 0},
		}},
		{"ipv6_only turns IPV6_V6ONLY on", "tcp://:1", with(func(o *Options) { o.IPv6Only = true }), []sockopt{
			{ip6, unix.IPV6_V6ONLY, "IPV6_V6ONLY", 1},
		}},
		{"tcp6 on [::] has IPV6_V6ONLY on", "tcp6://:1", unset(), []sockopt{
			{ip6, unix.IPV6_V6ONLY, "IPV6_V6ONLY", 1},
		}},
		{"reuse_port on tcp", "tcp4://127.0.0.1:1", with(func(o *Options) { o.ReusePort = true }), []sockopt{
			{sol, unix.SO_REUSEPORT, "SO_REUSEPORT", 1},
		}},
		{"reuse_port on udp6", "udp6://[::1]:1", with(func(o *Options) { o.ReusePort = true }), []sockopt{
			{sol, unix.SO_REUSEPORT, "SO_REUSEPORT", 1},
		}},
		{"free_bind on IPv4", "tcp4://127.0.0.1:1", with(func(o *Options) { o.FreeBind = true }), []sockopt{
			{ip4, unix.IP_FREEBIND, "IP_FREEBIND", 1},
		}},
		{"free_bind binds an IPv4 address the host does not have", "tcp4://192.0.2.1:1", with(func(o *Options) { o.FreeBind = true }), []sockopt{
			{ip4, unix.IP_FREEBIND, "IP_FREEBIND", 1},
		}},
		{"free_bind binds an IPv6 address the host does not have", "udp6://[2001:db8::1]:1", with(func(o *Options) { o.FreeBind = true }), []sockopt{
			{ip6, unix.IPV6_FREEBIND, "IPV6_FREEBIND", 1},
		}},
		{"transparent on IPv4", "tcp4://127.0.0.1:1", with(func(o *Options) { o.Transparent = true }), []sockopt{
			{ip4, unix.IP_TRANSPARENT, "IP_TRANSPARENT", 1},
		}},
		{"transparent on IPv6", "udp6://[::1]:1", with(func(o *Options) { o.Transparent = true }), []sockopt{
			{ip6, unix.IPV6_TRANSPARENT, "IPV6_TRANSPARENT", 1},
		}},
		{"keepalive with its timers", "tcp://:1", with(func(o *Options) {
			o.KeepAlive, o.KeepAliveTime, o.KeepAliveIntvl, o.KeepAliveCount = true, 30*time.Second, 5*time.Second, 4
		}), []sockopt{
			{sol, unix.SO_KEEPALIVE, "SO_KEEPALIVE", 1},
			{tcp, unix.TCP_KEEPIDLE, "TCP_KEEPIDLE", 30},
			{tcp, unix.TCP_KEEPINTVL, "TCP_KEEPINTVL", 5},
			{tcp, unix.TCP_KEEPCNT, "TCP_KEEPCNT", 4},
		}},
		{"no_delay", "tcp6://[::1]:1", with(func(o *Options) { o.NoDelay = true }), []sockopt{
			{tcp, unix.TCP_NODELAY, "TCP_NODELAY", 1},
		}},
		// The kernel keeps TCP_DEFER_ACCEPT as a count of SYN-ACK
		// retransmissions; 7s (1+2+4) survives the round trip exactly.
		{"defer_accept", "tcp4://127.0.0.1:1", with(func(o *Options) { o.DeferAccept = 7 * time.Second }), []sockopt{
			{tcp, unix.TCP_DEFER_ACCEPT, "TCP_DEFER_ACCEPT", 7},
		}},
		// The kernel doubles buffer sizes for its bookkeeping; 4 MiB is
		// above the default net.core.[rw]mem_max, which only the FORCE
		// options may exceed.
		{"receive_buffer and send_buffer", "udp4://127.0.0.1:1", with(func(o *Options) { o.ReceiveBuffer, o.SendBuffer = 4<<20, 64<<10 }), []sockopt{
			{sol, unix.SO_RCVBUF, "SO_RCVBUF", 8 << 20},
			{sol, unix.SO_SNDBUF, "SO_SNDBUF", 128 << 10},
		}},
		{"buffers on a unix socket", "unixgram://@NAME", with(func(o *Options) { o.ReceiveBuffer, o.SendBuffer = 64<<10, 4<<20 }), []sockopt{
			{sol, unix.SO_RCVBUF, "SO_RCVBUF", 128 << 10},
			{sol, unix.SO_SNDBUF, "SO_SNDBUF", 8 << 20},
		}},
		{"mark", "tcp4://127.0.0.1:1", with(func(o *Options) { o.Mark = 42 }), []sockopt{
			{sol, unix.SO_MARK, "SO_MARK", 42},
		}},
		{"mark on a unix socket", "unix://@NAME", with(func(o *Options) { o.Mark = 43 }), []sockopt{
			{sol, unix.SO_MARK, "SO_MARK", 43},
		}},
		// All 32 bits reach the kernel (getsockopt reads the u32 back as a
		// C int).
		{"the highest mark", "tcp4://127.0.0.1:1", with(func(o *Options) { o.Mark = math.MaxUint32 }), []sockopt{
			{sol, unix.SO_MARK, "SO_MARK", -1},
		}},
		{"ip_tos and ip_ttl on IPv4", "udp4://127.0.0.1:1", with(func(o *Options) { o.IPTOS, o.IPTTL = 0x10, 42 }), []sockopt{
			{ip4, unix.IP_TOS, "IP_TOS", 0x10},
			{ip4, unix.IP_TTL, "IP_TTL", 42},
		}},
		{"ip_tos and ip_ttl on IPv6 set the traffic class and hop limit", "tcp6://[::1]:1", with(func(o *Options) { o.IPTOS, o.IPTTL = 0xb8, 7 }), []sockopt{
			{ip6, unix.IPV6_TCLASS, "IPV6_TCLASS", 0xb8},
			{ip6, unix.IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS", 7},
		}},
		{"ip_tos and ip_ttl on dual-stack set both families", "tcp://:1", with(func(o *Options) { o.IPTOS, o.IPTTL = 0x20, 9 }), []sockopt{
			{ip6, unix.IPV6_TCLASS, "IPV6_TCLASS", 0x20},
			{ip6, unix.IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS", 9},
			{ip4, unix.IP_TOS, "IP_TOS", 0x20},
			{ip4, unix.IP_TTL, "IP_TTL", 9},
		}},
		{"priority", "udp://:1", with(func(o *Options) { o.Priority = 5 }), []sockopt{
			{sol, unix.SO_PRIORITY, "SO_PRIORITY", 5},
		}},
		{"broadcast", "udp4://127.0.0.1:1", with(func(o *Options) { o.Broadcast = true }), []sockopt{
			{sol, unix.SO_BROADCAST, "SO_BROADCAST", 1},
		}},
		{"pass_credentials on a socket file", "unixgram://DIR/g", with(func(o *Options) { o.PassCredentials = true }), []sockopt{
			{sol, unix.SO_PASSCRED, "SO_PASSCRED", 1},
		}},
		{"pass_credentials on an abstract socket", "unixpacket://@NAME", with(func(o *Options) { o.PassCredentials = true }), []sockopt{
			{sol, unix.SO_PASSCRED, "SO_PASSCRED", 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fd := openT(t, testAddress(t, tt.listen), tt.o)
			for _, w := range tt.want {
				got, err := unix.GetsockoptInt(fd, w.level, w.opt)
				if err != nil {
					t.Errorf("getsockopt %s: %v", w.name, err)
					continue
				}
				if got != w.want {
					t.Errorf("%s = %d, want %d", w.name, got, w.want)
				}
			}
		})
	}
}

func TestBindToDevice(t *testing.T) {
	t.Parallel()
	for _, listen := range []string{"tcp://:1", "udp4://127.0.0.1:1"} {
		t.Run(listen, func(t *testing.T) {
			t.Parallel()
			fd := openT(t, testAddress(t, listen), with(func(o *Options) { o.BindToDevice = "lo" }))
			got, err := unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
			if err != nil {
				t.Fatal(err)
			}
			if got != "lo" {
				t.Fatalf("SO_BINDTODEVICE = %q, want lo", got)
			}
			exchange(t, fd, "127.0.0.1")
		})
	}
}

// TestBacklog reads the listen backlog back from TCP_INFO, where Linux
// reports a listener's maximum backlog in tcpi_sacked.
func TestBacklog(t *testing.T) {
	t.Parallel()
	somaxconn := DefaultBacklog
	if b, err := os.ReadFile("/proc/sys/net/core/somaxconn"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			somaxconn = n
		}
	}
	tests := []struct {
		name    string
		backlog int32
		want    int
	}{
		{"a configured backlog", 17, 17},
		{"the default backlog, capped by net.core.somaxconn", 0, min(DefaultBacklog, somaxconn)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fd := openT(t, testAddress(t, "tcp4://127.0.0.1:1"), with(func(o *Options) { o.Backlog = tt.backlog }))
			info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
			if err != nil {
				t.Fatal(err)
			}
			if int(info.Sacked) != tt.want {
				t.Fatalf("listen backlog = %d, want %d", info.Sacked, tt.want)
			}
		})
	}
}

// TestLinkLocalZone binds fe80::1 on lo with free_bind: lo carries no
// link-local address, so nothing can connect, but the bound scope id shows
// that the zone reached bind(2) as lo's interface index.
func TestLinkLocalZone(t *testing.T) {
	t.Parallel()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no lo interface: %v", err)
	}
	tests := []struct {
		name   string
		listen string
		o      Options
	}{
		{"a zone by name", "tcp6://[fe80::1%lo]:1", with(func(o *Options) { o.FreeBind = true })},
		{"a zone by index", fmt.Sprintf("udp6://[fe80::1%%%d]:1", lo.Index), with(func(o *Options) { o.FreeBind = true })},
		{"no zone but bind_to_device", "tcp6://[fe80::1]:1", with(func(o *Options) { o.FreeBind, o.BindToDevice = true, "lo" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fd := openT(t, testAddress(t, tt.listen), tt.o)
			sa, err := unix.Getsockname(fd)
			if err != nil {
				t.Fatal(err)
			}
			if id := sa.(*unix.SockaddrInet6).ZoneId; id != uint32(lo.Index) {
				t.Errorf("scope id = %d, want %d (lo)", id, lo.Index)
			}
			if got := localT(t, fd).IP.String(); got != "fe80::1%lo" {
				t.Errorf("LocalAddress IP = %s, want fe80::1%%lo", got)
			}
		})
	}
}

func TestOpenReplacesAStaleSocketFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(socketDir(t), "stale")
	// A socket bound and closed leaves its file behind, as a crashed
	// superd would.
	old, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(old, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.Close(old)
	fd := openT(t, Address{Family: Unix, Kind: Stream, Path: path}, unset())
	exchange(t, fd, "")
}

func TestOpenRefusesToRemoveAnythingButASocket(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		create func(path string) error
		want   string
	}{
		{"a regular file", func(p string) error { return os.WriteFile(p, []byte("keep me"), 0o644) }, "a regular file"},
		{"a directory", func(p string) error { return os.Mkdir(p, 0o755) }, "a directory"},
		{"a symbolic link", func(p string) error { return os.Symlink("/nonexistent", p) }, "a symbolic link"},
		{"a named pipe", func(p string) error { return unix.Mkfifo(p, 0o600) }, "a named pipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(socketDir(t), "x")
			if err := tt.create(path); err != nil {
				t.Fatal(err)
			}
			before, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			a := Address{Family: Unix, Kind: Datagram, Path: path}
			fd, err := Open(a, unset())
			if err == nil {
				unix.Close(fd)
				t.Fatal("Open succeeded over a file that is not a socket")
			}
			want := fmt.Sprintf("listen unixgram://%s: %s exists and is not a socket (%s); superd removes only stale sockets", path, path, tt.want)
			if err.Error() != want {
				t.Errorf("error\n got: %s\nwant: %s", err, want)
			}
			after, err := os.Lstat(path)
			if err != nil || !os.SameFile(before, after) {
				t.Fatalf("the file was touched: %v", err)
			}
			if err := Unlink(a); err == nil || !strings.Contains(err.Error(), "is not a socket") {
				t.Errorf("Unlink = %v, want a refusal", err)
			}
			if _, err := os.Lstat(path); err != nil {
				t.Fatalf("Unlink removed the file: %v", err)
			}
		})
	}
}

func TestSocketFileModeAndOwner(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		o        Options
		mode     os.FileMode
		uid, gid int // -1: superd's own
		root     bool
	}{
		{"the default mode lets everyone connect", unset(), 0o666, -1, -1, false},
		{"file_mode narrows the mode", with(func(o *Options) { o.FileMode = 0o600 }), 0o600, -1, -1, false},
		{"owner and group", with(func(o *Options) { o.FileMode, o.OwnerUID, o.OwnerGID = 0o660, 65534, 65533 }), 0o660, 65534, 65533, true},
		{"group alone keeps the owner", with(func(o *Options) { o.OwnerGID = 65534 }), 0o666, -1, 65534, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.root && os.Geteuid() != 0 {
				t.Skip("chown needs root")
			}
			path := filepath.Join(socketDir(t), "s")
			fd := openT(t, Address{Family: Unix, Kind: Stream, Path: path}, tt.o)
			var st unix.Stat_t
			if err := unix.Lstat(path, &st); err != nil {
				t.Fatal(err)
			}
			if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
				t.Fatalf("%s is not a socket: mode %o", path, st.Mode)
			}
			if got := os.FileMode(st.Mode & 0o7777); got != tt.mode {
				t.Errorf("mode = %v, want %v", got, tt.mode)
			}
			uid, gid := tt.uid, tt.gid
			if uid < 0 {
				uid = os.Geteuid()
			}
			if gid < 0 {
				gid = os.Getegid()
			}
			if int(st.Uid) != uid || int(st.Gid) != gid {
				t.Errorf("owner = %d:%d, want %d:%d", st.Uid, st.Gid, uid, gid)
			}
			exchange(t, fd, "")
		})
	}
}

func TestOpenCreatesMissingParentDirectories(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(socketDir(t), "run", "svc")
	fd := openT(t, Address{Family: Unix, Kind: Stream, Path: filepath.Join(dir, "s")}, unset())
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&^0o755 != 0 {
		t.Errorf("%s: mode %v, want a directory of at most 0755", dir, fi.Mode())
	}
	exchange(t, fd, "")
}

func TestUnlink(t *testing.T) {
	t.Parallel()
	t.Run("removes a socket file", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(socketDir(t), "s")
		a := Address{Family: Unix, Kind: SeqPacket, Path: path}
		openT(t, a, unset())
		if err := Unlink(a); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Fatalf("socket file still there: %v", err)
		}
	})
	t.Run("is content when the file is already gone", func(t *testing.T) {
		t.Parallel()
		a := Address{Family: Unix, Kind: Stream, Path: filepath.Join(socketDir(t), "never")}
		if err := Unlink(a); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("does nothing for abstract and IP addresses", func(t *testing.T) {
		t.Parallel()
		for _, s := range []string{"unix://@x", "tcp4://:1"} {
			if err := Unlink(testAddress(t, s)); err != nil {
				t.Errorf("Unlink(%s) = %v", s, err)
			}
		}
	})
}

// openFDs counts this process's open fds.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot list /proc/self/fd: %v", err)
	}
	return len(entries)
}

// TestOpenErrorsCloseTheSocket is not parallel, so that the fd count is
// this test's alone.
func TestOpenErrorsCloseTheSocket(t *testing.T) {
	taken := openT(t, testAddress(t, "tcp4://127.0.0.1:1"), unset())
	takenAddr := localT(t, taken)
	dir := socketDir(t)
	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		a      Address
		o      Options
		want   string
		wantIs error
	}{
		{"an address in use", takenAddr, unset(),
			fmt.Sprintf("listen %s: bind: address already in use", takenAddr), unix.EADDRINUSE},
		{"a missing interface", testAddress(t, "tcp4://127.0.0.1:1"), with(func(o *Options) { o.BindToDevice = "nosuchdev0" }),
			"listen tcp4://127.0.0.1:0: bind_to_device nosuchdev0: setsockopt SO_BINDTODEVICE: no such device", unix.ENODEV},
		{"a missing zone", mustParse(t, "tcp6://[fe80::1%nosuchif0]:1"), unset(),
			"listen tcp6://[fe80::1%nosuchif0]:1: zone %nosuchif0: no such network interface", nil},
		{"a regular file in the way", Address{Family: Unix, Kind: Stream, Path: regular}, unset(),
			fmt.Sprintf("listen unix://%s: %s exists and is not a socket (a regular file); superd removes only stale sockets", regular, regular), nil},
		{"a regular file where a directory should be", Address{Family: Unix, Kind: Stream, Path: filepath.Join(regular, "s")}, unset(),
			fmt.Sprintf("listen unix://%s/s: mkdir %s: not a directory", regular, regular), unix.ENOTDIR},
		{"an option that does not apply", testAddress(t, "udp4://127.0.0.1:1"), with(func(o *Options) { o.NoDelay = true }),
			"listen udp4://127.0.0.1:0: no_delay does not apply to udp4 sockets (TCP only)", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := openFDs(t)
			fd, err := Open(tt.a, tt.o)
			if err == nil {
				unix.Close(fd)
				t.Fatalf("Open(%s) succeeded, want %q", tt.a, tt.want)
			}
			if fd != -1 {
				t.Errorf("Open returned fd %d with its error, want -1", fd)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tt.want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
			if after := openFDs(t); after != before {
				t.Errorf("open fds: %d before, %d after the failed Open", before, after)
			}
		})
	}
}

func TestLocalAddressOfAnUnboundUnixSocket(t *testing.T) {
	t.Parallel()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := LocalAddress(fd); err == nil {
		t.Fatal("LocalAddress of an unbound UNIX socket succeeded")
	}
}
