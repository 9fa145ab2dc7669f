// Package notify speaks the sd_notify(3) protocol: one datagram of
// newline-separated KEY=VALUE assignments to the unix socket named by
// NOTIFY_SOCKET (a path, or an abstract name written with a leading '@').
//
// It is a no-op when NOTIFY_SOCKET is unset, so callers need not check.
package notify

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends state changes to the service manager.
type Notifier struct {
	addr string // "" when there is no service manager to tell
}

// FromEnv returns a Notifier for $NOTIFY_SOCKET and unsets the variable, so
// that no child superd starts inherits it (children get a clean environment
// anyway; this keeps superd's own environment honest too).
func FromEnv() *Notifier {
	addr := os.Getenv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	return &Notifier{addr: addr}
}

// Addr is the socket this notifier sends to, as NOTIFY_SOCKET wrote it.
func (n *Notifier) Addr() string { return n.addr }

// Enabled reports whether a service manager listens.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != "" }

// Send sends the assignments as one datagram.
func (n *Notifier) Send(assignments ...string) error {
	if !n.Enabled() {
		return nil
	}
	name := n.addr
	if strings.HasPrefix(name, "@") {
		name = "\x00" + name[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strings.Join(assignments, "\n") + "\n")); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr, err)
	}
	return nil
}

// Ready says every socket is bound and superd serves.
func (n *Notifier) Ready(status string) error {
	return n.Send("READY=1", "STATUS="+status, fmt.Sprintf("MAINPID=%d", os.Getpid()))
}

// Reloading says a reload began; systemd's Type=notify-reload wants the
// monotonic time with it.
func (n *Notifier) Reloading() error {
	return n.Send("RELOADING=1", "STATUS=reloading", fmt.Sprintf("MONOTONIC_USEC=%d", monotonicUsec()))
}

// Stopping says a shutdown began.
func (n *Notifier) Stopping() error {
	return n.Send("STOPPING=1", "STATUS=stopping")
}

// Status sends a free-form status line.
func (n *Notifier) Status(s string) error {
	return n.Send("STATUS=" + s)
}

func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Now().UnixMicro()
	}
	return ts.Sec*1e6 + ts.Nsec/1e3
}
