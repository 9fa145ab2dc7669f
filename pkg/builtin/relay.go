package builtin

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"
)

// Relay implements `redirect:` for one accepted connection: it dials
// target (HOST:PORT, TCP) within dialTimeout (0: only ctx bounds the dial),
// then copies bytes both ways until both directions are done, and closes
// client and the target connection before it returns; the loop runs it in a
// goroutine of its own. sent counts the bytes relayed from client to
// target, received those from target to client, whatever the outcome.
//
// A direction is done when its source reads EOF; the half-close is then
// passed on with CloseWrite to the other side, so a client that shuts down
// its sending side still receives the target's answer, and a target that
// closes first leaves the client's sending side open until the client
// closes too. The first error of either direction ends both. When ctx is
// done first (shutdown, max_duration), both connections are closed at once
// and the error wraps ctx.Err(). A failed dial closes client and returns
// the dial error at once.
//
// With *net.TCPConn on both sides, io.Copy moves the bytes with splice(2),
// never through user space; any other net.Conn works, without half-close if
// it has no CloseWrite method.
func Relay(ctx context.Context, client net.Conn, target string, dialTimeout time.Duration) (sent, received int64, err error) {
	defer client.Close()
	d := net.Dialer{Timeout: dialTimeout}
	backend, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return 0, 0, fmt.Errorf("redirect %s: %w", target, err)
	}
	defer backend.Close()

	closeBoth := func() {
		client.Close()
		backend.Close()
	}
	stop := context.AfterFunc(ctx, closeBoth)

	type result struct {
		toTarget bool
		n        int64
		err      error
	}
	results := make(chan result, 2)
	pipe := func(dst, src net.Conn, toTarget bool) {
		n, err := io.Copy(dst, src)
		if err == nil {
			closeWrite(dst) // src read EOF: tell dst nothing more comes
		}
		results <- result{toTarget, n, err}
	}
	go pipe(backend, client, true)
	go pipe(client, backend, false)

	for range 2 {
		r := <-results
		if r.toTarget {
			sent = r.n
		} else {
			received = r.n
		}
		if r.err != nil && err == nil {
			err = r.err
			closeBoth() // unblock the other direction
		}
	}
	if cancelled := !stop(); cancelled && err != nil {
		err = ctx.Err()
	}
	if err != nil {
		return sent, received, fmt.Errorf("redirect %s: %w", target, err)
	}
	return sent, received, nil
}

// closeWrite shuts down the sending side of c where c supports it. An
// error means the connection is already gone, which the other direction's
// copy reports.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
