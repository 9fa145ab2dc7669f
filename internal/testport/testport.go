// Package testport hands tests loopback ports for the servers they start,
// and says whether the IPv6 loopback address is there to test with.
//
// A port the kernel picked for a socket bound to :0 and then closed comes
// from the ephemeral range (net.ipv4.ip_local_port_range, 32768–60999 by
// default), the range every outgoing connection takes its source port
// from: while a test writes the port into a configuration and starts
// superd, a connection made by another test binary of the same `go test
// ./...` run may take it, and the bind fails. Free picks instead, at
// random, from ports below the ephemeral range, which the kernel never
// hands out on its own, and checks that nothing holds them.
package testport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The range Free draws from: below the default ephemeral range, and below
// the ports `make bench` uses (20000–31999).
const (
	first = 10000
	last  = 19999
)

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// Free returns a port on which nothing listens now, over TCP or UDP on
// 127.0.0.1, and which no earlier call in this process returned (a test
// asking for two ports gets two). Where the host's ephemeral range reaches
// down into Free's range, Free leaves the pick to the kernel, as binding
// :0 does.
func Free(t testing.TB) int {
	t.Helper()
	lo, hi := first, last
	if ephemeralLow() <= last {
		lo, hi = 0, 0
	}
	for tries := 0; tries < 1000; tries++ {
		port := 0
		if hi > 0 {
			port = lo + rand.IntN(hi-lo+1)
		}
		port, ok := claim(port)
		if !ok {
			continue
		}
		mu.Lock()
		taken := given[port]
		given[port] = true
		mu.Unlock()
		if !taken {
			return port
		}
	}
	t.Fatal("testport: no free loopback port found in 1000 tries")
	return 0
}

// claim binds port (0: any) over TCP, then the same port over UDP, and
// frees both; ok is false when either was taken.
func claim(port int) (int, bool) {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return 0, false
	}
	defer l.Close()
	port = l.Addr().(*net.TCPAddr).Port
	c, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return 0, false
	}
	c.Close()
	return port, true
}

// IPv6Loopback reports whether ::1 can be bound: containers often run
// with IPv6 switched off, where tests of IPv6 clients have nothing to test.
var IPv6Loopback = sync.OnceValue(func() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
})

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}
