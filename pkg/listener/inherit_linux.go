package listener

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Inherited is a listening socket this process was started with, by a
// service manager (sd_listen_fds(3)) or by superd's own live upgrade.
type Inherited struct {
	FD      int
	Address Address
	// Name is the fd's entry in LISTEN_FDNAMES, if any.
	Name string
}

// Key is what an inherited socket is matched by: the canonical address it
// is bound to (Bound). A `[::]` socket configured with ipv6_only is not
// dual-stack on the wire, so it is keyed as such.
func Key(a Address, o Options) string {
	a = Bound(a, o)
	if a.DualStack && o.IPv6Only {
		a.DualStack = false
	}
	return a.String()
}

// TakeInherited returns the sockets passed from fd 3 on per LISTEN_FDS and
// unsets the LISTEN_* variables, so nothing superd starts sees them. The
// sockets count only if LISTEN_PID names this process — or if pidUnknown is
// set, for a parent that could not know the pid before the fork (superd's
// own upgrade). Each fd is made close-on-exec; its blocking mode is left
// alone, since the open file description may be shared with a child that is
// serving it right now — the caller sets O_NONBLOCK when it starts watching.
// A fd that is not a usable socket is closed and reported in the error,
// after the others are returned.
func TakeInherited(pidUnknown bool) ([]Inherited, error) {
	defer func() {
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
	}()
	nStr := os.Getenv("LISTEN_FDS")
	if nStr == "" {
		return nil, nil
	}
	if !pidUnknown {
		pid, err := strconv.Atoi(os.Getenv("LISTEN_PID"))
		if err != nil || pid != os.Getpid() {
			return nil, nil // meant for another process
		}
	}
	n, err := strconv.Atoi(nStr)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("LISTEN_FDS=%q is not a count", nStr)
	}
	var names []string
	if s := os.Getenv("LISTEN_FDNAMES"); s != "" {
		names = strings.Split(s, ":")
	}
	var out []Inherited
	var bad []string
	for i := 0; i < n; i++ {
		fd := 3 + i
		unix.CloseOnExec(fd)
		a, err := LocalAddress(fd)
		if err != nil {
			unix.Close(fd)
			bad = append(bad, fmt.Sprintf("fd %d: %v", fd, err))
			continue
		}
		in := Inherited{FD: fd, Address: a}
		if i < len(names) {
			in.Name = names[i]
		}
		out = append(out, in)
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("inherited fds not used: %s", strings.Join(bad, "; "))
	}
	return out, nil
}
