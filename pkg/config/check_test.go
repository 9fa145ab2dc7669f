package config

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/superd/superd/pkg/listener"
)

// TestCrossCheckAgreesWithTheKernel binds each pair of sockets as superd
// would, on loopback and wildcard addresses of a free port, and compares
// what the kernel says with what superd check says: a configuration check
// passes must bind, and one it refuses must not.
func TestCrossCheckAgreesWithTheKernel(t *testing.T) {
	const reuse = "socket: {reuse_port: true}"
	const v6only = "socket: {ipv6_only: true}"
	pairs := []struct {
		a, aOpts, b, bOpts string
	}{
		{"tcp4://:PORT", "", "tcp://127.0.0.1:PORT", ""},
		{"tcp://127.0.0.1:PORT", "", "tcp4://:PORT", ""},
		{"udp4://:PORT", "", "udp://127.0.0.1:PORT", ""},
		{"udp://127.0.0.1:PORT", "", "udp4://:PORT", ""},
		{"tcp6://:PORT", "", "tcp://[::1]:PORT", ""},
		{"tcp://[::1]:PORT", "", "tcp://:PORT", ""},
		{"tcp://:PORT", "", "tcp://127.0.0.1:PORT", ""},
		{"tcp://:PORT", v6only, "tcp4://:PORT", ""},
		{"tcp://:PORT", v6only, "tcp://127.0.0.1:PORT", ""},
		{"tcp4://:PORT", reuse, "tcp://127.0.0.1:PORT", reuse},
		{"tcp4://:PORT", reuse, "tcp://127.0.0.1:PORT", ""},
		{"tcp://127.0.0.1:PORT", "", "tcp://127.0.0.2:PORT", ""},
		{"tcp://127.0.0.1:PORT", "", "tcp://127.0.0.1:PORT", ""},
		{"tcp4://:PORT", "", "udp4://:PORT", ""},
		{"tcp6://:PORT", "", "tcp4://:PORT", ""},
	}
	for _, pc := range pairs {
		name := pc.a + " " + pc.aOpts + " then " + pc.b + " " + pc.bOpts
		t.Run(name, func(t *testing.T) {
			port := strconv.Itoa(freeDualPort(t))
			a := strings.ReplaceAll(pc.a, "PORT", port)
			b := strings.ReplaceAll(pc.b, "PORT", port)
			src := "services:\n  a: {listen: \"" + a + "\", internal: echo" + opts(pc.aOpts) + "}\n" +
				"  b: {listen: \"" + b + "\", internal: echo" + opts(pc.bOpts) + "}\n"
			_, err := Parse("superd.yaml", []byte(src), testOptions())
			checkSays := err == nil
			kernelSays := bindBoth(t, src)
			if checkSays != kernelSays {
				t.Errorf("check says bindable %v (%v), the kernel %v:\n%s", checkSays, err, kernelSays, src)
			}
		})
	}
}

func opts(o string) string {
	if o == "" {
		return ""
	}
	return ", " + o
}

// bindBoth binds the sockets of the two services of src in order, as
// superd's listener would, and says whether both could be bound.
func bindBoth(t *testing.T, src string) bool {
	t.Helper()
	// The parser resolves addresses and options; cross-checking is what
	// is under test, so parse each service alone.
	var socks []Socket
	for _, line := range strings.Split(strings.TrimSpace(src), "\n")[1:] {
		cfg, err := Parse("one.yaml", []byte("services:\n"+line+"\n"), testOptions())
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		socks = append(socks, cfg.Services[0].Sockets...)
	}
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, sc := range socks {
		fd, err := listener.Open(sc.Address, sc.Options)
		if errors.Is(err, unix.EADDRINUSE) {
			return false
		}
		if err != nil {
			t.Fatalf("bind %s: %v", sc.Address, err)
		}
		fds = append(fds, fd)
	}
	return true
}

// freeDualPort is a port no TCP or UDP socket holds now, on any address.
func freeDualPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", ":"+strconv.Itoa(port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}
