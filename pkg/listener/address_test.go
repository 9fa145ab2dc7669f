package listener

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	t.Parallel()
	ip := netip.MustParseAddr
	tests := []struct {
		name string
		in   string
		want Address
		str  string // canonical form; "" means the input itself
	}{
		{"tcp with an IPv4 host is IPv4", "tcp://127.0.0.1:13",
			Address{Family: IPv4, Kind: Stream, IP: ip("127.0.0.1"), Port: 13}, "tcp4://127.0.0.1:13"},
		{"tcp with an IPv6 host is IPv6 only", "tcp://[::1]:13",
			Address{Family: IPv6, Kind: Stream, IP: ip("::1"), Port: 13}, "tcp6://[::1]:13"},
		{"tcp without a host is dual-stack [::]", "tcp://:13",
			Address{Family: IPv6, Kind: Stream, IP: netip.IPv6Unspecified(), Port: 13, DualStack: true}, "tcp://[::]:13"},
		{"tcp with an explicit [::] is dual-stack too", "tcp://[::]:13",
			Address{Family: IPv6, Kind: Stream, IP: netip.IPv6Unspecified(), Port: 13, DualStack: true}, ""},
		{"tcp with 0.0.0.0 is the IPv4 wildcard", "tcp://0.0.0.0:13",
			Address{Family: IPv4, Kind: Stream, IP: netip.IPv4Unspecified(), Port: 13}, "tcp4://0.0.0.0:13"},
		{"tcp4 without a host is 0.0.0.0", "tcp4://:13",
			Address{Family: IPv4, Kind: Stream, IP: netip.IPv4Unspecified(), Port: 13}, "tcp4://0.0.0.0:13"},
		{"tcp6 without a host is [::] but not dual-stack", "tcp6://:13",
			Address{Family: IPv6, Kind: Stream, IP: netip.IPv6Unspecified(), Port: 13}, "tcp6://[::]:13"},
		{"tcp6 with [::] is not dual-stack", "tcp6://[::]:13",
			Address{Family: IPv6, Kind: Stream, IP: netip.IPv6Unspecified(), Port: 13}, ""},
		{"tcp4 with an IPv4 host", "tcp4://10.1.2.3:65535",
			Address{Family: IPv4, Kind: Stream, IP: ip("10.1.2.3"), Port: 65535}, ""},
		{"an IPv4-mapped host under tcp is unmapped to IPv4", "tcp://[::ffff:127.0.0.1]:13",
			Address{Family: IPv4, Kind: Stream, IP: ip("127.0.0.1"), Port: 13}, "tcp4://127.0.0.1:13"},
		{"an IPv4-mapped host under tcp4 is unmapped to IPv4", "tcp4://[::ffff:10.0.0.1]:13",
			Address{Family: IPv4, Kind: Stream, IP: ip("10.0.0.1"), Port: 13}, "tcp4://10.0.0.1:13"},
		{"a link-local host keeps its zone", "tcp://[fe80::1%lo]:80",
			Address{Family: IPv6, Kind: Stream, IP: ip("fe80::1%lo"), Port: 80}, "tcp6://[fe80::1%lo]:80"},
		{"a link-local host may carry a numeric zone", "udp6://[fe80::1%2]:80",
			Address{Family: IPv6, Kind: Datagram, IP: ip("fe80::1%2"), Port: 80}, ""},
		{"a long IPv6 host is printed in its short form", "tcp6://[2001:db8:0:0:0:0:0:1]:80",
			Address{Family: IPv6, Kind: Stream, IP: ip("2001:db8::1"), Port: 80}, "tcp6://[2001:db8::1]:80"},
		{"a port with leading zeros is a number", "tcp://127.0.0.1:0013",
			Address{Family: IPv4, Kind: Stream, IP: ip("127.0.0.1"), Port: 13}, "tcp4://127.0.0.1:13"},
		{"a tcp port name comes from /etc/services", "tcp://:daytime",
			Address{Family: IPv6, Kind: Stream, IP: netip.IPv6Unspecified(), Port: 13, DualStack: true}, "tcp://[::]:13"},
		{"a udp port name comes from /etc/services", "udp4://127.0.0.1:daytime",
			Address{Family: IPv4, Kind: Datagram, IP: ip("127.0.0.1"), Port: 13}, "udp4://127.0.0.1:13"},
		{"udp without a host is dual-stack [::]", "udp://:69",
			Address{Family: IPv6, Kind: Datagram, IP: netip.IPv6Unspecified(), Port: 69, DualStack: true}, "udp://[::]:69"},
		{"udp4 without a host is 0.0.0.0", "udp4://:69",
			Address{Family: IPv4, Kind: Datagram, IP: netip.IPv4Unspecified(), Port: 69}, "udp4://0.0.0.0:69"},
		{"udp6 with an IPv6 host", "udp6://[::1]:69",
			Address{Family: IPv6, Kind: Datagram, IP: ip("::1"), Port: 69}, ""},
		{"udp with an IPv4 host", "udp://127.0.0.1:69",
			Address{Family: IPv4, Kind: Datagram, IP: ip("127.0.0.1"), Port: 69}, "udp4://127.0.0.1:69"},
		{"unix with a path is a stream socket file", "unix:///run/superd/x.sock",
			Address{Family: Unix, Kind: Stream, Path: "/run/superd/x.sock"}, ""},
		{"unixgram with a path is a datagram socket file", "unixgram:///run/log",
			Address{Family: Unix, Kind: Datagram, Path: "/run/log"}, ""},
		{"unixpacket with a path is a seqpacket socket file", "unixpacket:///run/p",
			Address{Family: Unix, Kind: SeqPacket, Path: "/run/p"}, ""},
		{"unix with @ is abstract", "unix://@superd/test",
			Address{Family: Unix, Kind: Stream, Path: "superd/test", Abstract: true}, ""},
		{"unixgram with @ is abstract", "unixgram://@g",
			Address{Family: Unix, Kind: Datagram, Path: "g", Abstract: true}, ""},
		{"unixpacket with @ is abstract", "unixpacket://@p q",
			Address{Family: Unix, Kind: SeqPacket, Path: "p q", Abstract: true}, ""},
		{"a path of 107 bytes fits", "unix:///" + strings.Repeat("a", 106),
			Address{Family: Unix, Kind: Stream, Path: "/" + strings.Repeat("a", 106)}, ""},
		{"an abstract name of 106 bytes fits", "unix://@" + strings.Repeat("a", 106),
			Address{Family: Unix, Kind: Stream, Path: strings.Repeat("a", 106), Abstract: true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseAddress(tt.in)
			if err != nil {
				t.Fatalf("ParseAddress(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseAddress(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			str := tt.str
			if str == "" {
				str = tt.in
			}
			if got.String() != str {
				t.Errorf("String() = %q, want %q", got.String(), str)
			}
			again, err := ParseAddress(got.String())
			if err != nil || again != got {
				t.Errorf("ParseAddress(%q) = %#v, %v; want it to round-trip to %#v", got.String(), again, err, got)
			}
		})
	}
}

func TestParseAddressErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"an unknown scheme lists the known ones", "tcpx://:13",
			`unknown scheme "tcpx" (want tcp, tcp4, tcp6, udp, udp4, udp6, unix, unixgram, unixpacket)`},
		{"schemes are lower case", "TCP://:13", `unknown scheme "TCP"`},
		{"an address without a scheme says how to write one", "127.0.0.1:13",
			`address "127.0.0.1:13" has no scheme: write e.g. tcp://:13 or unix:///run/NAME.sock`},
		{"a single slash is no scheme separator", "unix:/run/x", `has no scheme`},
		{"an empty address has no scheme", "", `has no scheme`},
		{"a host name is refused without DNS", "tcp://localhost:13",
			`host "localhost" is not an IP address: superd binds without DNS, so write an IP literal such as 127.0.0.1 or [::1], or leave the host out to listen on all addresses`},
		{"a star is not a wildcard", "tcp://*:13", `host "*" is not an IP address`},
		{"a bad IPv4 literal is named as such", "tcp://256.1.1.1:13", `invalid IPv4 address "256.1.1.1"`},
		{"an IPv4 literal with leading zeros is ambiguous", "tcp://010.1.1.1:13", `invalid IPv4 address "010.1.1.1"`},
		{"a bad IPv6 literal is named as such", "tcp://[::g]:13", `invalid IPv6 address [::g]`},
		{"an IPv6 host needs brackets", "tcp://::1:13", `IPv6 host ::1 must be in brackets: [::1]:13`},
		{"an IPv4 host must not be in brackets", "tcp://[127.0.0.1]:13", `IPv4 address 127.0.0.1 must not be in brackets`},
		{"empty brackets are not a host", "tcp://[]:13", `empty IPv6 host []`},
		{"an unclosed bracket", "tcp://[::1:13", `missing ']' after IPv6 host in "[::1:13"`},
		{"text between bracket and port", "tcp://[::1]x:13", `unexpected "x:13" after [::1]: want :PORT`},
		{"a bracketed host without a port", "tcp://[::1]", `missing port after [::1]`},
		{"a host without a port", "tcp://127.0.0.1", `missing port in "127.0.0.1": write HOST:PORT or :PORT`},
		{"a host with an empty port", "tcp://127.0.0.1:", `missing port`},
		{"nothing after the scheme", "udp://", `missing host and port`},
		{"port 0 is refused", "tcp://:0", `port 0 out of range: must be 1-65535`},
		{"port 65536 is refused", "tcp://:65536", `port 65536 out of range: must be 1-65535`},
		{"a huge port is refused", "tcp://:99999999999999999999999", `out of range: must be 1-65535`},
		{"a negative port is no service name", "tcp://:-1", `invalid port "-1": want a number or a service name from /etc/services`},
		{"a path after the port is no port", "tcp://127.0.0.1:13/x", `invalid port "13/x"`},
		{"an unknown service name", "tcp://:no-such-service", `unknown port "no-such-service": no tcp service of that name in /etc/services`},
		{"an IPv4 host under tcp6", "tcp6://127.0.0.1:13", `tcp6 cannot listen on IPv4 address 127.0.0.1 (use tcp4 or tcp)`},
		{"an IPv6 host under tcp4", "tcp4://[::1]:13", `tcp4 cannot listen on IPv6 address [::1] (use tcp6 or tcp)`},
		{"an IPv4 host under udp6", "udp6://127.0.0.1:13", `udp6 cannot listen on IPv4 address 127.0.0.1 (use udp4 or udp)`},
		{"an IPv6 host under udp4", "udp4://[::]:13", `udp4 cannot listen on IPv6 address [::] (use udp6 or udp)`},
		{"an IPv4-mapped host under tcp6", "tcp6://[::ffff:127.0.0.1]:13",
			`IPv4-mapped host [::ffff:127.0.0.1] cannot be used with tcp6: write tcp4://127.0.0.1:13`},
		{"a zone on a global address", "tcp://[2001:db8::1%eth0]:13",
			`zone %eth0 applies only to link-local addresses (fe80::/10), not to 2001:db8::1`},
		{"a zone on an IPv4 address", "tcp://127.0.0.1%lo:13", `invalid host "127.0.0.1%lo": a %zone applies only to IPv6 link-local addresses`},
		{"an empty zone", "tcp://[fe80::1%]:13", `invalid IPv6 address [fe80::1%]`},
		{"a relative unix path", "unix://run/x.sock", `socket path "run/x.sock" is not absolute: write unix:///PATH (three slashes)`},
		{"a unix address without a path", "unixgram://", `missing socket path: write unix:///run/NAME.sock or unix://@NAME`},
		{"an empty abstract name", "unixpacket://@", `abstract socket name after @ is empty`},
		{"a unix path too long for sun_path", "unix:///" + strings.Repeat("a", 107),
			`socket path is 108 bytes, longer than the 107 a UNIX socket address holds`},
		{"an abstract name too long for sun_path", "unix://@" + strings.Repeat("a", 107),
			`abstract socket name is 107 bytes, longer than the 106 a UNIX socket address holds`},
		{"a NUL in a unix path", "unix:///run/a\x00b", `socket path contains a NUL byte`},
		{"a NUL in an abstract name", "unix://@a\x00b", `abstract socket name contains a NUL byte`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseAddress(tt.in)
			if err == nil {
				t.Fatalf("ParseAddress(%q) = %v, want an error containing %q", tt.in, got, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseAddress(%q) error\n got: %s\nwant: %s", tt.in, err, tt.want)
			}
			if got != (Address{}) {
				t.Errorf("ParseAddress(%q) returned %#v with its error, want the zero Address", tt.in, got)
			}
		})
	}
}

func TestAddressNetwork(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"tcp://:1", "tcp"},
		{"tcp://127.0.0.1:1", "tcp4"},
		{"tcp://[::1]:1", "tcp6"},
		{"tcp6://:1", "tcp6"},
		{"udp://:1", "udp"},
		{"udp4://:1", "udp4"},
		{"udp6://:1", "udp6"},
		{"unix:///a", "unix"},
		{"unixgram://@a", "unixgram"},
		{"unixpacket:///a", "unixpacket"},
	}
	for _, tt := range tests {
		a, err := ParseAddress(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Network(); got != tt.want {
			t.Errorf("ParseAddress(%q).Network() = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := (Address{}).Network(); got != "" {
		t.Errorf("zero Address: Network() = %q, want \"\"", got)
	}
	if got := (Address{}).String(); got != "invalid address" {
		t.Errorf("zero Address: String() = %q, want \"invalid address\"", got)
	}
}

func TestKindAndFamilyString(t *testing.T) {
	t.Parallel()
	for k, want := range map[Kind]string{Stream: "stream", Datagram: "datagram", SeqPacket: "seqpacket", 0: "Kind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
	for f, want := range map[Family]string{IPv4: "IPv4", IPv6: "IPv6", Unix: "unix", 9: "Family(9)"} {
		if got := f.String(); got != want {
			t.Errorf("Family(%d).String() = %q, want %q", int(f), got, want)
		}
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"tcp://:13", "tcp://127.0.0.1:13", "tcp://[::1]:13", "tcp://[::]:13",
		"tcp4://:13", "tcp6://:13", "tcp6://[fe80::1%lo]:80", "tcp://[::ffff:10.0.0.1]:7",
		"udp://:69", "udp4://0.0.0.0:69", "udp6://[::1]:69", "tcp://:daytime", "udp://:tftp",
		"unix:///run/x.sock", "unixgram:///dev/log", "unixpacket:///p", "unix://@abstract",
		"unixgram://@", "unix://rel", "tcp://host:1", "tcp://:0", "tcp://[::1", "tcp://[fe80::1%a:b]:1",
		"tcpx://:1", "", "://", "tcp://:-1", "tcp://:+1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			if a != (Address{}) {
				t.Fatalf("ParseAddress(%q) returned %#v with error %v", s, a, err)
			}
			return
		}
		if a.Network() == "" || a.Kind == 0 || a.Family == 0 {
			t.Fatalf("ParseAddress(%q) = %#v: incomplete", s, a)
		}
		if a.Family != Unix && (a.Port == 0 || !a.IP.IsValid()) {
			t.Fatalf("ParseAddress(%q) = %#v: IP address without IP or port", s, a)
		}
		if a.Family == IPv4 && !a.IP.Is4() || a.Family == IPv6 && !a.IP.Is6() {
			t.Fatalf("ParseAddress(%q) = %#v: IP does not match Family", s, a)
		}
		str := a.String()
		again, err := ParseAddress(str)
		if err != nil {
			t.Fatalf("ParseAddress(%q) = %#v, but its String %q does not parse: %v", s, a, str, err)
		}
		if again != a {
			t.Fatalf("ParseAddress(%q) = %#v, but ParseAddress(%q) = %#v", s, a, str, again)
		}
		if again.String() != str {
			t.Fatalf("String is not stable: %q then %q", str, again.String())
		}
	})
}

func BenchmarkParseAddress(b *testing.B) {
	for _, s := range []string{"tcp://:13", "tcp4://127.0.0.1:8080", "tcp6://[fe80::1%lo]:80", "unix:///run/superd/x.sock", "tcp://:daytime"} {
		b.Run(s, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseAddress(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
