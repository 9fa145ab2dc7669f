package builtin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// echoBufSize is the read size of one echo session.
const echoBufSize = 32 << 10

// ServeStream serves the built-in service name on conn, a connection the
// loop accepted, and closes conn before it returns; the loop runs it in a
// goroutine of its own. It returns nil when the session ended as its
// protocol says: echo and discard at the client's EOF, daytime and time
// once the answer is written, chargen when the client goes away. When ctx
// is done first (shutdown, max_duration), conn is closed at once and the
// error wraps ctx.Err(). An unknown name gives an error wrapping
// ErrUnknown; anything else is an I/O error of this one session, worth a
// debug log, never a reason to stop the service. now may be nil for
// time.Now.
func ServeStream(ctx context.Context, name string, conn net.Conn, now func() time.Time) error {
	defer conn.Close()
	if !Valid(name) {
		return fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	if now == nil {
		now = time.Now
	}
	// Closing the connection is what unblocks a Read or Write in progress.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	err := serveStream(name, conn, now)
	if cancelled := !stop(); cancelled && err != nil {
		return fmt.Errorf("%s: %w", name, ctx.Err())
	}
	return err
}

func serveStream(name string, conn net.Conn, now func() time.Time) error {
	switch name {
	case nameEcho:
		return echoStream(conn)
	case nameDiscard:
		if _, err := io.Copy(io.Discard, conn); err != nil {
			return fmt.Errorf("discard: read: %w", err)
		}
		return nil
	case nameDaytime:
		return writeAnswer(name, conn, appendDaytime(make([]byte, 0, 32), now()))
	case nameTime:
		return writeAnswer(name, conn, appendTime(make([]byte, 0, 4), now()))
	default: // nameChargen; ServeStream checked the name.
		return chargenStream(conn)
	}
}

// echoStream writes back what it reads, in order, until the client's EOF.
// Each chunk is written before the next read, so when EOF arrives every
// byte has been echoed and closing the connection loses nothing.
func echoStream(conn net.Conn) error {
	buf := make([]byte, echoBufSize)
	for {
		n, rerr := conn.Read(buf)
		if n > 0 {
			if _, err := conn.Write(buf[:n]); err != nil {
				return fmt.Errorf("echo: write: %w", err)
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("echo: read: %w", rerr)
		}
	}
}

// writeAnswer writes the one answer of daytime or time; the caller closes.
func writeAnswer(name string, conn net.Conn, answer []byte) error {
	if _, err := conn.Write(answer); err != nil {
		return fmt.Errorf("%s: write: %w", name, err)
	}
	return nil
}

// chargenStream writes chargen lines until a write fails. The client is
// gone when its reset or broken pipe reports it, which is how a chargen
// session is meant to end. What the client sends is drained so that its
// writes never stall on a full window; the drainer ends when the
// connection is closed, before chargenStream returns.
func chargenStream(conn net.Conn) error {
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_, _ = io.Copy(io.Discard, conn)
	}()
	defer func() {
		conn.Close()
		<-drained
	}()
	cycle := chargenTable[:cycleLen]
	for {
		if _, err := conn.Write(cycle); err != nil {
			if peerGone(err) {
				return nil
			}
			return fmt.Errorf("chargen: write: %w", err)
		}
	}
}

// peerGone reports whether a write failed because the peer closed or reset
// its end of the connection.
func peerGone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}
