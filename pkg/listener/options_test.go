package listener

import (
	"math"
	"strings"
	"testing"
	"time"
)

// unset is the Options the config package builds when nothing is
// configured: every field zero except the owner, which is NoOwner.
func unset() Options { return Options{OwnerUID: NoOwner, OwnerGID: NoOwner} }

func with(f func(*Options)) Options {
	o := unset()
	f(&o)
	return o
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	keepalive := func(o *Options) { o.KeepAlive = true }
	tests := []struct {
		name string
		addr string
		o    Options
		want string // "" means valid
	}{
		{"no options suit every address", "unixgram://@x", unset(), ""},
		{"the zero Options sets owner root, which only socket files take", "tcp://:1", Options{},
			"owner does not apply to tcp sockets (UNIX sockets with a path only)"},

		{"backlog on tcp", "tcp://:1", with(func(o *Options) { o.Backlog = 10 }), ""},
		{"backlog on unixpacket", "unixpacket:///p", with(func(o *Options) { o.Backlog = 10 }), ""},
		{"backlog on udp is refused", "udp://:1", with(func(o *Options) { o.Backlog = 10 }),
			"backlog does not apply to udp sockets (stream and seqpacket sockets only)"},
		{"backlog on unixgram is refused", "unixgram:///g", with(func(o *Options) { o.Backlog = 10 }),
			"backlog does not apply to unixgram sockets"},
		{"a negative backlog is refused", "tcp://:1", with(func(o *Options) { o.Backlog = -1 }),
			"backlog -1 out of range: must be 1-2147483647"},

		{"ipv6_only on a dual-stack wildcard", "tcp://:1", with(func(o *Options) { o.IPv6Only = true }), ""},
		{"ipv6_only on an IPv6 host", "udp6://[::1]:1", with(func(o *Options) { o.IPv6Only = true }), ""},
		{"ipv6_only on IPv4 is refused", "tcp4://:1", with(func(o *Options) { o.IPv6Only = true }),
			"ipv6_only does not apply to tcp4 sockets (IPv6 sockets only)"},
		{"ipv6_only on unix is refused", "unix:///s", with(func(o *Options) { o.IPv6Only = true }),
			"ipv6_only does not apply to unix sockets (IPv6 sockets only)"},

		{"reuse_port on udp", "udp://:1", with(func(o *Options) { o.ReusePort = true }), ""},
		{"reuse_port on unix is refused", "unix:///s", with(func(o *Options) { o.ReusePort = true }),
			"reuse_port does not apply to unix sockets (TCP and UDP only)"},
		{"free_bind on tcp6", "tcp6://[2001:db8::1]:1", with(func(o *Options) { o.FreeBind = true }), ""},
		{"free_bind on an abstract socket is refused", "unix://@a", with(func(o *Options) { o.FreeBind = true }),
			"free_bind does not apply to abstract unix sockets (TCP and UDP only)"},
		{"transparent on udp4", "udp4://:1", with(func(o *Options) { o.Transparent = true }), ""},
		{"transparent on unixpacket is refused", "unixpacket:///p", with(func(o *Options) { o.Transparent = true }),
			"transparent does not apply to unixpacket sockets (TCP and UDP only)"},

		{"bind_to_device on tcp", "tcp://:1", with(func(o *Options) { o.BindToDevice = "eth0" }), ""},
		{"bind_to_device on unix is refused", "unix:///s", with(func(o *Options) { o.BindToDevice = "lo" }),
			"bind_to_device does not apply to unix sockets (TCP and UDP only)"},
		{"bind_to_device with a slash is no interface", "tcp://:1", with(func(o *Options) { o.BindToDevice = "a/b" }),
			`bind_to_device "a/b" is not an interface name`},
		{"bind_to_device longer than IFNAMSIZ is no interface", "tcp://:1", with(func(o *Options) { o.BindToDevice = "abcdefghijklmnop" }),
			`bind_to_device "abcdefghijklmnop" is not an interface name`},

		{"keepalive with its timers on tcp", "tcp://:1", with(func(o *Options) {
			o.KeepAlive, o.KeepAliveTime, o.KeepAliveIntvl, o.KeepAliveCount = true, time.Minute, 10*time.Second, 5
		}), ""},
		{"keepalive on udp is refused", "udp://:1", with(keepalive),
			"keepalive does not apply to udp sockets (TCP only)"},
		{"keepalive on unix is refused", "unix:///s", with(keepalive),
			"keepalive does not apply to unix sockets (TCP only)"},
		{"keepalive_time without keepalive is refused", "tcp://:1", with(func(o *Options) { o.KeepAliveTime = time.Minute }),
			"keepalive_time is set but keepalive is not: set keepalive: true"},
		{"keepalive_time on udp names the TCP rule first", "udp://:1", with(func(o *Options) { o.KeepAliveTime = time.Minute }),
			"keepalive_time does not apply to udp sockets (TCP only)"},
		{"keepalive_time below a second is refused", "tcp://:1", with(func(o *Options) { keepalive(o); o.KeepAliveTime = 500 * time.Millisecond }),
			"keepalive_time must be a whole number of seconds from 1s to 32767s (the kernel counts seconds), not 500ms"},
		{"keepalive_time with a fraction is refused", "tcp://:1", with(func(o *Options) { keepalive(o); o.KeepAliveTime = 1500 * time.Millisecond }),
			"not 1.5s"},
		{"keepalive_time over the kernel maximum is refused", "tcp://:1", with(func(o *Options) { keepalive(o); o.KeepAliveTime = 32768 * time.Second }),
			"keepalive_time must be a whole number of seconds from 1s to 32767s"},
		{"keepalive_interval without keepalive is refused", "tcp://:1", with(func(o *Options) { o.KeepAliveIntvl = time.Second }),
			"keepalive_interval is set but keepalive is not"},
		{"a negative keepalive_interval is refused", "tcp://:1", with(func(o *Options) { keepalive(o); o.KeepAliveIntvl = -time.Second }),
			"keepalive_interval must be a whole number of seconds from 1s to 32767s (the kernel counts seconds), not -1s"},
		{"keepalive_count without keepalive is refused", "tcp://:1", with(func(o *Options) { o.KeepAliveCount = 3 }),
			"keepalive_count is set but keepalive is not"},
		{"keepalive_count over 127 is refused", "tcp://:1", with(func(o *Options) { keepalive(o); o.KeepAliveCount = 128 }),
			"keepalive_count 128 out of range: must be 1-127"},

		{"no_delay on tcp", "tcp6://[::1]:1", with(func(o *Options) { o.NoDelay = true }), ""},
		{"no_delay on udp is refused", "udp4://127.0.0.1:1", with(func(o *Options) { o.NoDelay = true }),
			"no_delay does not apply to udp4 sockets (TCP only)"},
		{"no_delay on unix is refused", "unix:///s", with(func(o *Options) { o.NoDelay = true }),
			"no_delay does not apply to unix sockets (TCP only)"},
		{"defer_accept on tcp", "tcp://:1", with(func(o *Options) { o.DeferAccept = 5 * time.Second }), ""},
		{"defer_accept on udp is refused", "udp://:1", with(func(o *Options) { o.DeferAccept = 5 * time.Second }),
			"defer_accept does not apply to udp sockets (TCP only)"},
		{"defer_accept below a second is refused", "tcp://:1", with(func(o *Options) { o.DeferAccept = time.Millisecond }),
			"defer_accept must be a whole number of seconds"},

		{"buffers on unixgram", "unixgram:///g", with(func(o *Options) { o.ReceiveBuffer, o.SendBuffer = 1<<20, 1<<20 }), ""},
		{"a negative receive_buffer is refused", "tcp://:1", with(func(o *Options) { o.ReceiveBuffer = -1 }),
			"receive_buffer -1 out of range: must be 1-1073741823"},
		{"a send_buffer the kernel cannot double is refused", "tcp://:1", with(func(o *Options) { o.SendBuffer = 1 << 30 }),
			"send_buffer 1073741824 out of range"},
		{"mark on unix", "unix:///s", with(func(o *Options) { o.Mark = 7 }), ""},

		{"ip_tos on udp6", "udp6://:1", with(func(o *Options) { o.IPTOS = 0xb8 }), ""},
		{"ip_tos on unix is refused", "unix:///s", with(func(o *Options) { o.IPTOS = 0x10 }),
			"ip_tos does not apply to unix sockets (TCP and UDP only)"},
		{"ip_ttl on tcp4", "tcp4://:1", with(func(o *Options) { o.IPTTL = 1 }), ""},
		{"ip_ttl on unixgram is refused", "unixgram://@g", with(func(o *Options) { o.IPTTL = 64 }),
			"ip_ttl does not apply to abstract unixgram sockets (TCP and UDP only)"},
		{"priority on unixpacket", "unixpacket://@p", with(func(o *Options) { o.Priority = 6 }), ""},
		{"a negative priority is refused", "tcp://:1", with(func(o *Options) { o.Priority = -1 }),
			"priority -1 out of range"},

		{"broadcast on udp4", "udp4://:1", with(func(o *Options) { o.Broadcast = true }), ""},
		{"broadcast on dual-stack udp", "udp://:1", with(func(o *Options) { o.Broadcast = true }), ""},
		{"broadcast on tcp is refused", "tcp://:1", with(func(o *Options) { o.Broadcast = true }),
			"broadcast does not apply to tcp sockets (UDP only)"},
		{"broadcast on unixgram is refused", "unixgram:///g", with(func(o *Options) { o.Broadcast = true }),
			"broadcast does not apply to unixgram sockets (UDP only)"},
		{"broadcast on udp6 is refused", "udp6://:1", with(func(o *Options) { o.Broadcast = true }),
			"broadcast does not apply to IPv6-only sockets (IPv6 has no broadcast)"},
		{"broadcast with ipv6_only is refused", "udp://:1", with(func(o *Options) { o.Broadcast, o.IPv6Only = true, true }),
			"broadcast does not apply to IPv6-only sockets"},

		{"pass_credentials on an abstract socket", "unix://@a", with(func(o *Options) { o.PassCredentials = true }), ""},
		{"pass_credentials on tcp is refused", "tcp://:1", with(func(o *Options) { o.PassCredentials = true }),
			"pass_credentials does not apply to tcp sockets (UNIX sockets only)"},

		{"file_mode, owner and group on a socket file", "unixgram:///g", with(func(o *Options) { o.FileMode, o.OwnerUID, o.OwnerGID = 0o600, 0, 0 }), ""},
		{"file_mode on an abstract socket is refused", "unix://@a", with(func(o *Options) { o.FileMode = 0o600 }),
			"file_mode does not apply to abstract unix sockets (UNIX sockets with a path only)"},
		{"file_mode on tcp is refused", "tcp://:1", with(func(o *Options) { o.FileMode = 0o600 }),
			"file_mode does not apply to tcp sockets"},
		{"file_mode with setuid bits is refused", "unix:///s", with(func(o *Options) { o.FileMode = 0o4755 }),
			"file_mode 04755 out of range: must be at most 0777"},
		{"owner on an abstract socket is refused", "unixpacket://@p", with(func(o *Options) { o.OwnerUID = 1000 }),
			"owner does not apply to abstract unixpacket sockets (UNIX sockets with a path only)"},
		{"group on udp is refused", "udp://:1", with(func(o *Options) { o.OwnerGID = 1000 }),
			"group does not apply to udp sockets (UNIX sockets with a path only)"},
		{"an owner below -1 is refused", "unix:///s", with(func(o *Options) { o.OwnerUID = -2 }),
			"owner id -2 out of range"},

		{"a link-local host with a zone", "tcp6://[fe80::1%lo]:1", unset(), ""},
		{"a link-local host without a zone is refused", "tcp6://[fe80::1]:1", unset(),
			"link-local address [fe80::1] needs a zone, as in [fe80::1%eth0], or bind_to_device"},
		{"a link-local host without a zone but with bind_to_device", "tcp6://[fe80::1]:1", with(func(o *Options) { o.BindToDevice = "lo" }), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := ParseAddress(tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			err = tt.o.Validate(a)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate(%s) = %v, want nil", a, err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate(%s) = nil, want %q", a, tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate(%s) error\n got: %s\nwant: %s", a, err, tt.want)
			}
		})
	}
}

func TestOptionsValidateAcceptsEvery32BitMark(t *testing.T) {
	t.Parallel()
	a, err := ParseAddress("tcp://:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := with(func(o *Options) { o.Mark = math.MaxUint32 }).Validate(a); err != nil {
		t.Errorf("mark 0xffffffff: %v", err)
	}
}

func TestOptionsValidateReportsOptionsInSpecOrder(t *testing.T) {
	t.Parallel()
	a, err := ParseAddress("udp://:1")
	if err != nil {
		t.Fatal(err)
	}
	o := with(func(o *Options) { o.NoDelay, o.Backlog, o.PassCredentials = true, 5, true })
	if err := o.Validate(a); err == nil || !strings.HasPrefix(err.Error(), "backlog ") {
		t.Fatalf("Validate = %v, want the backlog error first", err)
	}
}

func TestOptionsValidateRefusesAnInvalidAddress(t *testing.T) {
	t.Parallel()
	if err := unset().Validate(Address{}); err == nil || err.Error() != "invalid address" {
		t.Fatalf("Validate(Address{}) = %v, want invalid address", err)
	}
}
