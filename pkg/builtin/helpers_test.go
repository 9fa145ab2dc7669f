package builtin

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"
)

// testTimeout bounds every wait of these tests; a wait that reaches it is a
// failure, never a way to let time pass.
const testTimeout = 30 * time.Second

// testClock is the instant the injected clocks return: a Wednesday, so the
// daytime line has every field of ctime's format.
var testClock = time.Date(2026, time.November, 25, 7, 22, 41, 0, time.UTC)

func fixedClock(t time.Time) func() time.Time {
	return func() time.Time { return t }
}

// listenTCP opens a listener on an ephemeral loopback port, closed at cleanup.
func listenTCP(t *testing.T) *net.TCPListener {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// dialTCP connects to ln; the connection has a deadline of testTimeout and
// is closed at cleanup.
func dialTCP(t *testing.T, addr net.Addr) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, addr.(*net.TCPAddr))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatalf("set deadline: %v", err)
	}
	return c
}

// acceptOne accepts one connection from ln in a goroutine and delivers it.
func acceptOne(t *testing.T, ln *net.TCPListener) <-chan *net.TCPConn {
	t.Helper()
	ch := make(chan *net.TCPConn, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

// recv waits up to testTimeout for a value from ch.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatalf("%s: channel closed", what)
		}
		return v
	case <-time.After(testTimeout):
		t.Fatalf("%s: nothing after %v", what, testTimeout)
	}
	panic("unreachable")
}

// startStream serves one connection with ServeStream(ctx, name, …) and
// returns the client's end and where ServeStream's result arrives.
func startStream(t *testing.T, ctx context.Context, name string, now func() time.Time) (*net.TCPConn, <-chan error) {
	t.Helper()
	ln := listenTCP(t)
	accepted := acceptOne(t, ln)
	client := dialTCP(t, ln.Addr())
	conn := recv(t, accepted, "accept")
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- ServeStream(ctx, name, conn, now)
	}()
	t.Cleanup(func() {
		client.Close()
		waitClosed(t, finished, "ServeStream to end at cleanup")
	})
	return client, done
}

// waitClosed waits up to testTimeout for ch to be closed.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(testTimeout):
		t.Errorf("%s: not done after %v", what, testTimeout)
	}
}

// chargenLine is line i of the chargen stream, written from RFC 864's
// description rather than from the package's table.
func chargenLine(i int) []byte {
	line := make([]byte, 0, 74)
	for k := 0; k < 72; k++ {
		line = append(line, byte(0x20+(i+k)%95))
	}
	return append(line, '\r', '\n')
}

// chargenStreamFrom is the first n bytes of the chargen stream starting at
// line first.
func chargenStreamFrom(first, n int) []byte {
	var b bytes.Buffer
	for i := first; b.Len() < n; i++ {
		b.Write(chargenLine(i))
	}
	return b.Bytes()[:n]
}
