package server

import (
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// The connections sock_diag names as waiting are exactly those completed
// and not accepted, for TCP (by cookie) and UNIX (by inode) listeners.
func TestPendingConnectionsAreNamedUntilAccepted(t *testing.T) {
	needDiag(t)
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = filepath.Join(t.TempDir(), "l.sock")
			}
			l, err := net.Listen(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			waiting := streamWaiting(fdOf(t, l))
			if waiting == nil {
				t.Fatal("a listening socket has no way to list what waits")
			}
			list := func() map[uint64]int {
				t.Helper()
				p, err := waiting()
				if err != nil {
					t.Fatalf("sock_diag: %v", err)
				}
				return p
			}
			if p := list(); len(p) != 0 {
				t.Fatalf("%d waiting before any client", len(p))
			}
			for range 2 {
				c, err := net.Dial(network, l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			var before map[uint64]int
			waitFor(t, "two connections waiting", func() bool { before = list(); return len(before) == 2 })
			c, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			after := list()
			if len(after) != 1 {
				t.Fatalf("%d waiting after one accept, want 1", len(after))
			}
			for id := range after {
				if before[id] == 0 {
					t.Errorf("the connection still waiting (%x) was not among the two before", id)
				}
			}
		})
	}
	// Not a listening stream socket: nothing to list.
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if streamWaiting(fdOf(t, u)) != nil {
		t.Error("a UDP socket was taken for a listening stream socket")
	}
}

// fdOf is a descriptor of s's socket (a duplicate, closed when the test
// ends).
func fdOf(t *testing.T, s any) int {
	t.Helper()
	f, err := s.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

// needDiag skips a test where the kernel has no sock_diag for TCP and UNIX
// sockets (no inet_diag or unix_diag, a sandbox kernel).
func needDiag(t *testing.T) {
	t.Helper()
	if _, err := pendingTCP(unix.AF_INET, 1); err != nil {
		t.Skipf("no sock_diag for TCP here: %v", err)
	}
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "probe.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := streamWaiting(fdOf(t, l))(); err != nil {
		t.Skipf("no sock_diag for UNIX sockets here: %v", err)
	}
}

// Clients of a UNIX listener that closed their end all read as inode 0:
// counted, so that a child taking one of them is seen to.
func TestClosedUnixClientsAreCounted(t *testing.T) {
	needDiag(t)
	path := filepath.Join(t.TempDir(), "l.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fd := fdOf(t, l)
	for range 2 {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	p, err := streamWaiting(fd)()
	if err != nil || len(p) != 1 || p[0] != 2 {
		t.Errorf("two closed clients waiting: %v, %v; want inode 0 counted twice", p, err)
	}
}

// FuzzDiagMessages feeds the sock_diag reply parsers what a kernel (or
// anything else on the socket) might send: they must return, never panic
// or read past a message.
func FuzzDiagMessages(f *testing.F) {
	msg := func(typ uint16, payload []byte) []byte {
		b := binary.NativeEndian.AppendUint32(nil, uint32(16+len(payload)))
		b = binary.NativeEndian.AppendUint16(b, typ)
		b = append(b, make([]byte, 10)...)
		return append(b, payload...)
	}
	inet := make([]byte, sizeofInetDiagMsg)
	binary.NativeEndian.PutUint64(inet[44:], 0xc00c1e)
	icons := []byte{8, 0, unixDiagICons, 0, 7, 0, 0, 0}
	f.Add(append(msg(sockDiagByFamily, inet), msg(unix.NLMSG_DONE, nil)...), true)
	f.Add(msg(sockDiagByFamily, append(make([]byte, sizeofUnixDiagMsg), icons...)), false)
	f.Add(msg(unix.NLMSG_ERROR, []byte{0xfe, 0xff, 0xff, 0xff}), false)
	f.Fuzz(func(t *testing.T, b []byte, dump bool) {
		for _, parse := range []func(map[uint64]int, uint16, []byte) error{inetPending, unixPending} {
			pending := map[uint64]int{}
			diagMessages(b, dump, func(typ uint16, m []byte) error { return parse(pending, typ, m) })
		}
	})
}
