package builtin

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"
)

// goodSource is a source the anti-reflection rule accepts.
var goodSource = netip.MustParseAddrPort("127.0.0.1:40000")

func TestReplyDatagramPerService(t *testing.T) {
	t.Parallel()
	now := fixedClock(testClock)
	buf := make([]byte, ReplyBufSize)
	req := []byte("hello, built-in\x00\xff")

	if reply, ok := ReplyDatagram("echo", req, goodSource, now, buf); !ok || !bytes.Equal(reply, req) {
		t.Errorf("echo = %q, %v; want the payload", reply, ok)
	}
	if reply, ok := ReplyDatagram("echo", nil, goodSource, now, buf); !ok || len(reply) != 0 {
		t.Errorf("echo of an empty datagram = %q, %v; want an empty reply", reply, ok)
	}
	if reply, ok := ReplyDatagram("discard", req, goodSource, now, buf); ok || reply != nil {
		t.Errorf("discard = %q, %v; want a drop", reply, ok)
	}
	if reply, ok := ReplyDatagram("daytime", req, goodSource, now, buf); !ok || string(reply) != "Wed Nov 25 07:22:41 2026\r\n" {
		t.Errorf("daytime = %q, %v", reply, ok)
	}
	reply, ok := ReplyDatagram("time", req, goodSource, now, buf)
	if !ok || len(reply) != 4 || binary.BigEndian.Uint32(reply) != uint32(testClock.Unix()+2208988800) {
		t.Errorf("time = %x, %v", reply, ok)
	}
	if reply, ok := ReplyDatagram("nosuch", req, goodSource, now, buf); ok || reply != nil {
		t.Errorf("unknown service = %q, %v; want a drop", reply, ok)
	}
	if reply, ok := ReplyDatagram("daytime", req, goodSource, nil, nil); !ok || len(reply) != 26 {
		t.Errorf("daytime with a nil clock and buffer = %q, %v", reply, ok)
	}
}

func TestChargenDatagramIsARandomSliceOfTheLineStream(t *testing.T) {
	t.Parallel()
	buf := make([]byte, ReplyBufSize)
	lengths := map[int]bool{}
	starts := map[int]bool{}
	for range 2000 {
		reply, ok := ReplyDatagram("chargen", nil, goodSource, nil, buf)
		if !ok {
			t.Fatal("chargen dropped a datagram from a good source")
		}
		if len(reply) > 512 {
			t.Fatalf("chargen reply of %d bytes, over RFC 864's 512", len(reply))
		}
		lengths[len(reply)] = true
		if len(reply) == 0 {
			continue
		}
		start := int(reply[0]) - 0x20
		if start < 0 || start >= 95 {
			t.Fatalf("reply starts with %q, not at a line start", reply[0])
		}
		starts[start] = true
		if want := chargenStreamFrom(start, len(reply)); !bytes.Equal(reply, want) {
			t.Fatalf("reply %q\nwant     %q", reply, want)
		}
	}
	// 2000 uniform draws: a few distinct values at least, or the
	// randomness is gone.
	if len(lengths) < 50 || len(starts) < 50 {
		t.Fatalf("%d distinct lengths, %d distinct start lines in 2000 replies", len(lengths), len(starts))
	}
}

func TestAntiReflection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		from   string
		answer bool
	}{
		{"a client on an ephemeral port is answered", "192.0.2.1:40000", true},
		{"port 1024, the first unreserved, is answered", "192.0.2.1:1024", true},
		{"port 2048 is answered", "192.0.2.1:2048", true},
		{"port 65535 is answered", "192.0.2.1:65535", true},
		{"loopback is answered", "127.0.0.1:50000", true},
		{"IPv6 loopback is answered", "[::1]:50000", true},
		{"an IPv6 client is answered", "[2001:db8::1]:50000", true},
		{"a link-local IPv6 client with a zone is answered", "[fe80::1%eth0]:50000", true},
		{"an IPv4-mapped client is answered", "[::ffff:192.0.2.1]:50000", true},
		{"port 7, echo, is dropped", "192.0.2.1:7", false},
		{"port 9, discard, is dropped", "192.0.2.1:9", false},
		{"port 13, daytime, is dropped", "192.0.2.1:13", false},
		{"port 19, chargen, is dropped", "192.0.2.1:19", false},
		{"port 37, time, is dropped", "192.0.2.1:37", false},
		{"port 0 is dropped", "192.0.2.1:0", false},
		{"port 53, another server's, is dropped", "192.0.2.1:53", false},
		{"port 1023, the last reserved, is dropped", "192.0.2.1:1023", false},
		{"port 2049, NFS, is dropped", "192.0.2.1:2049", false},
		{"an IPv4-mapped source on port 19 is dropped", "[::ffff:192.0.2.1]:19", false},
		{"IPv6 on port 7 is dropped", "[2001:db8::1]:7", false},
		{"0.0.0.0 is dropped", "0.0.0.0:40000", false},
		{"0.1.2.3 in 0.0.0.0/8 is dropped", "0.1.2.3:40000", false},
		{"the IPv6 unspecified address is dropped", "[::]:40000", false},
		{"IPv4-mapped 0.0.0.0 is dropped", "[::ffff:0.0.0.0]:40000", false},
		{"the limited broadcast is dropped", "255.255.255.255:40000", false},
		{"IPv4-mapped broadcast is dropped", "[::ffff:255.255.255.255]:40000", false},
		{"IPv4 multicast is dropped", "224.0.0.1:40000", false},
		{"IPv4 multicast at the top of the range is dropped", "239.255.255.255:40000", false},
		{"IPv6 multicast is dropped", "[ff02::1]:40000", false},
		{"IPv4-mapped multicast is dropped", "[::ffff:224.0.0.251]:40000", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := netip.MustParseAddrPort(tt.from)
			for _, name := range []string{"echo", "daytime", "time", "chargen"} {
				_, ok := ReplyDatagram(name, []byte("x"), from, nil, nil)
				if ok != tt.answer {
					t.Errorf("%s from %s: ok = %v, want %v", name, from, ok, tt.answer)
				}
			}
		})
	}
	t.Run("an invalid source is dropped", func(t *testing.T) {
		if _, ok := ReplyDatagram("echo", []byte("x"), netip.AddrPort{}, nil, nil); ok {
			t.Error("answered the zero AddrPort")
		}
	})
}

func TestReplyDatagramAllocatesNothing(t *testing.T) {
	now := fixedClock(testClock)
	buf := make([]byte, ReplyBufSize)
	req := make([]byte, 1200)
	for _, name := range Names() {
		allocs := testing.AllocsPerRun(200, func() {
			ReplyDatagram(name, req, goodSource, now, buf)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per reply", name, allocs)
		}
	}
}

// udpServer is what the loop does with a readable datagram socket, reduced
// to a goroutine: read, ask ReplyDatagram, send. Each decision is reported
// on the returned channel. The goroutine ends when the socket is closed at
// cleanup.
func udpServer(t *testing.T, network, addr, name string, now func() time.Time) (*net.UDPConn, <-chan bool) {
	t.Helper()
	srv, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Skipf("listen %s %s: %v", network, addr, err)
	}
	decisions := make(chan bool, 16)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		in := make([]byte, 64<<10)
		out := make([]byte, ReplyBufSize)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(in)
			if err != nil {
				return // closed at cleanup
			}
			reply, ok := ReplyDatagram(name, in[:n], from, now, out)
			if ok {
				if _, err := srv.WriteToUDPAddrPort(reply, from); err != nil {
					t.Errorf("reply to %s: %v", from, err)
				}
			}
			decisions <- ok
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		waitClosed(t, finished, "UDP server loop")
	})
	return srv, decisions
}

func TestUDPBuiltinsOverRealSockets(t *testing.T) {
	t.Parallel()
	payload := bytes.Repeat([]byte{0, 1, 2, 0xfe, 0xff}, 1000) // 5000 bytes: more than one MTU
	check := map[string]func(t *testing.T, reply []byte){
		"echo": func(t *testing.T, reply []byte) {
			if !bytes.Equal(reply, payload) {
				t.Errorf("echo: %d bytes back, want the %d sent", len(reply), len(payload))
			}
		},
		"daytime": func(t *testing.T, reply []byte) {
			line, ok := bytes.CutSuffix(reply, []byte("\r\n"))
			got, err := time.Parse(time.ANSIC, string(line))
			if !ok || err != nil || !got.Equal(testClock) {
				t.Errorf("daytime = %q (%v)", reply, err)
			}
		},
		"time": func(t *testing.T, reply []byte) {
			if len(reply) != 4 || binary.BigEndian.Uint32(reply) != uint32(testClock.Unix()+2208988800) {
				t.Errorf("time = %x", reply)
			}
		},
		"chargen": func(t *testing.T, reply []byte) {
			if len(reply) > 512 {
				t.Fatalf("chargen: %d bytes", len(reply))
			}
			if len(reply) > 0 && !bytes.Equal(reply, chargenStreamFrom(int(reply[0])-0x20, len(reply))) {
				t.Errorf("chargen = %q", reply)
			}
		},
	}
	for _, fam := range []struct{ network, addr string }{{"udp4", "127.0.0.1:0"}, {"udp6", "[::1]:0"}} {
		for _, name := range []string{"echo", "daytime", "time", "chargen"} {
			t.Run(fam.network+"/"+name, func(t *testing.T) {
				t.Parallel()
				srv, decisions := udpServer(t, fam.network, fam.addr, name, fixedClock(testClock))
				c, err := net.DialUDP(fam.network, nil, srv.LocalAddr().(*net.UDPAddr))
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(testTimeout))
				in := make([]byte, 64<<10)
				for i := range 5 {
					if _, err := c.Write(payload); err != nil {
						t.Fatalf("send %d: %v", i, err)
					}
					n, err := c.Read(in)
					if err != nil {
						t.Fatalf("reply %d: %v", i, err)
					}
					check[name](t, in[:n])
					if !recv(t, decisions, "decision") {
						t.Fatal("the server dropped a datagram it answered")
					}
				}
			})
		}
	}
}

func TestUDPDiscardOverRealSocketNeverReplies(t *testing.T) {
	t.Parallel()
	srv, decisions := udpServer(t, "udp4", "127.0.0.1:0", "discard", nil)
	c, err := net.DialUDP("udp4", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	for i := range 10 {
		if _, err := c.Write([]byte("drop me")); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if recv(t, decisions, "decision") {
			t.Fatalf("discard answered datagram %d", i)
		}
	}
}

func BenchmarkReplyDatagram(b *testing.B) {
	now := time.Now
	buf := make([]byte, ReplyBufSize)
	req := make([]byte, 64)
	for _, name := range Names() {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ReplyDatagram(name, req, goodSource, now, buf)
			}
		})
	}
	b.Run("refused", func(b *testing.B) {
		from := netip.MustParseAddrPort("192.0.2.1:19")
		b.ReportAllocs()
		for b.Loop() {
			ReplyDatagram("chargen", req, from, now, buf)
		}
	})
}

func FuzzReplyDatagram(f *testing.F) {
	f.Add(uint8(0), []byte("hello"), []byte{127, 0, 0, 1}, uint16(40000))
	f.Add(uint8(1), []byte{}, []byte{192, 0, 2, 1}, uint16(19))
	f.Add(uint8(2), []byte("x"), []byte{0, 0, 0, 0}, uint16(5000))
	f.Add(uint8(3), []byte("x"), netip.MustParseAddr("ff02::1").AsSlice(), uint16(5000))
	f.Add(uint8(4), []byte("x"), netip.MustParseAddr("::ffff:10.0.0.1").AsSlice(), uint16(7))
	f.Add(uint8(5), []byte("x"), []byte{1, 2, 3}, uint16(5000))
	now := fixedClock(testClock)
	names := append(Names(), "", "nosuch")
	f.Fuzz(func(t *testing.T, svc uint8, req, ip []byte, port uint16) {
		name := names[int(svc)%len(names)]
		addr, _ := netip.AddrFromSlice(ip) // the zero Addr when ip has a wrong length
		from := netip.AddrPortFrom(addr, port)
		var buf []byte
		if svc&0x80 != 0 {
			buf = make([]byte, ReplyBufSize)
		}
		reply, ok := ReplyDatagram(name, req, from, now, buf)
		if !ok {
			if reply != nil {
				t.Fatalf("dropped but returned %q", reply)
			}
			return
		}
		if port < 1024 || port == 2049 {
			t.Fatalf("%s answered source port %d", name, port)
		}
		if a := addr.Unmap(); !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || (a.Is4() && (a.As4()[0] == 0 || a.As4() == [4]byte{255, 255, 255, 255})) {
			t.Fatalf("%s answered source address %s", name, addr)
		}
		switch name {
		case "echo":
			if !bytes.Equal(reply, req) {
				t.Fatalf("echo = %q, want %q", reply, req)
			}
		case "daytime", "time", "chargen":
			if len(reply) > 512 {
				t.Fatalf("%s: %d-byte reply", name, len(reply))
			}
		default:
			t.Fatalf("%s answered", name)
		}
	})
}
