package server

// Helper children: the test binary re-executes itself as the program a
// service runs (`exec: [testBinary, "superd-helper", NAME, ARGS...]`), so
// the tests need no separate build step and the children are real processes.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/superd/superd/pkg/spawn"
)

const helperMarker = "superd-helper"

func TestMain(m *testing.M) {
	spawn.MaybeLaunch()
	if len(os.Args) > 2 && os.Args[1] == helperMarker {
		// A direct exit: os.Exit would run the race detector's exit
		// hook, which sleeps a second in every child.
		unix.Exit(runHelper(os.Args[2], os.Args[3:]))
	}
	// The server under test runs in this process: like superd's main, keep
	// fds this process inherited away from its children.
	if err := spawn.CloseInheritedOnExec(); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// report is what the "report" helper tells about the process it runs in.
type report struct {
	PID        int               `json:"pid"`
	Args       []string          `json:"args"`
	Env        map[string]string `json:"env"`
	FDs        map[int]string    `json:"fds"`
	UID        int               `json:"uid"`
	GID        int               `json:"gid"`
	Groups     []int             `json:"groups"`
	Umask      string            `json:"umask"`
	Nice       int               `json:"nice"`
	NoFile     [2]uint64         `json:"nofile"`
	Core       [2]uint64         `json:"core"`
	Cwd        string            `json:"cwd"`
	NonBlock   map[int]bool      `json:"nonblock"`
	ServedOnFD int               `json:"served_on_fd"`
}

func makeReport(served int) report {
	r := report{
		PID:        os.Getpid(),
		Args:       os.Args,
		Env:        map[string]string{},
		FDs:        map[int]string{},
		UID:        os.Getuid(),
		GID:        os.Getgid(),
		NonBlock:   map[int]bool{},
		ServedOnFD: served,
	}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		r.Env[k] = v
	}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// Only fds without close-on-exec can have come from the parent:
		// the Go runtime (and the race detector) open theirs O_CLOEXEC,
		// and a leaked superd fd is exactly one that lacks the flag.
		if fdfl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || fdfl&unix.FD_CLOEXEC != 0 {
			continue
		}
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue
		}
		r.FDs[fd] = target
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil {
			r.NonBlock[fd] = fl&unix.O_NONBLOCK != 0
		}
	}
	r.Groups, _ = os.Getgroups()
	sort.Ints(r.Groups)
	if st, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				r.Umask = strings.TrimSpace(v)
			}
		}
	}
	prio, _ := unix.Getpriority(unix.PRIO_PROCESS, 0)
	r.Nice = 20 - prio // the raw syscall returns 20 - nice
	var lim unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	r.NoFile = [2]uint64{lim.Cur, lim.Max}
	unix.Getrlimit(unix.RLIMIT_CORE, &lim)
	r.Core = [2]uint64{lim.Cur, lim.Max}
	r.Cwd, _ = os.Getwd()
	return r
}

func runHelper(name string, args []string) int {
	switch name {
	case "report":
		// Accept mode, stdio: the connection is fd 0 and fd 1.
		r := makeReport(0)
		json.NewEncoder(os.Stdout).Encode(r)
		return 0
	case "report-fd3":
		// Accept mode, listen_fds: the connection is fd 3.
		r := makeReport(3)
		f := os.NewFile(3, "conn")
		json.NewEncoder(f).Encode(r)
		return 0
	case "accept-report":
		// Wait mode, listen_fds: accept one connection on whichever
		// listening socket has one, tell it everything, exit.
		n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
		pfds := make([]unix.PollFd, n)
		for i := range pfds {
			pfds[i] = unix.PollFd{Fd: int32(3 + i), Events: unix.POLLIN}
		}
		r := makeReport(0) // before accept: the listing shows the given fds
		if _, err := unix.Poll(pfds, -1); err != nil {
			return 3
		}
		for _, p := range pfds {
			if p.Revents&unix.POLLIN != 0 {
				conn, _, err := unix.Accept(int(p.Fd))
				if err != nil {
					return 4
				}
				r.ServedOnFD = int(p.Fd)
				f := os.NewFile(uintptr(conn), "conn")
				json.NewEncoder(f).Encode(r)
				f.Close()
				return 0
			}
		}
		return 5
	case "stdio-accept":
		// Wait mode, stdio, stream: fd 0 is the listening socket.
		r := makeReport(0)
		conn, _, err := unix.Accept(0)
		if err != nil {
			return 4
		}
		f := os.NewFile(uintptr(conn), "conn")
		json.NewEncoder(f).Encode(r)
		f.Close()
		return 0
	case "accept-hold":
		// Wait mode, stdio, stream: accept one connection on fd 0, say
		// the pid, and hold it until the client closes it.
		conn, _, err := unix.Accept(0)
		if err != nil {
			return 4
		}
		f := os.NewFile(uintptr(conn), "conn")
		fmt.Fprintf(f, "%d\n", os.Getpid())
		io.Copy(io.Discard, f)
		return 0
	case "udp-reply":
		// Wait mode, UDP: answer datagrams on fd 0 with "PID:payload";
		// exit after one, or after the count in args.
		count := 1
		if len(args) > 0 {
			count, _ = strconv.Atoi(args[0])
		}
		buf := make([]byte, 2048)
		for i := 0; i < count; i++ {
			n, from, err := unix.Recvfrom(0, buf, 0)
			if err != nil {
				return 4
			}
			reply := fmt.Sprintf("%d:%s", os.Getpid(), buf[:n])
			if err := unix.Sendto(0, []byte(reply), 0, from); err != nil {
				return 5
			}
		}
		return 0
	case "stderr":
		// Write the args as lines on stderr, say "done" on stdout, exit 3.
		for _, a := range args {
			fmt.Fprintln(os.Stderr, a)
		}
		fmt.Fprintln(os.Stdout, "done")
		return 3
	case "stderr-script":
		// Say the pid, then follow commands from the client, one per
		// line, answering "ok" after each: "w TEXT" writes TEXT to
		// stderr without a newline (`\n` in TEXT stands for one),
		// "nonblock" makes fd 2 non-blocking, "blocking?" answers "yes" or
		// "no" for fd 2 instead of "ok", "exit" exits 0.
		fmt.Fprintf(os.Stdout, "%d\n", os.Getpid())
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			cmd, arg, _ := strings.Cut(in.Text(), " ")
			switch cmd {
			case "w":
				os.Stderr.WriteString(strings.ReplaceAll(arg, `\n`, "\n"))
			case "nonblock":
				if err := unix.SetNonblock(2, true); err != nil {
					return 4
				}
			case "blocking?":
				fl, err := unix.FcntlInt(2, unix.F_GETFL, 0)
				if err != nil {
					return 4
				}
				if fl&unix.O_NONBLOCK == 0 {
					fmt.Fprintln(os.Stdout, "yes")
				} else {
					fmt.Fprintln(os.Stdout, "no")
				}
				continue
			case "exit":
				return 0
			}
			fmt.Fprintln(os.Stdout, "ok")
		}
		return 0
	case "hold":
		// Say the pid, then hold the connection until the client closes
		// it; exit 0 on EOF, or 7 on SIGTERM after saying "term".
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		fmt.Fprintf(os.Stdout, "%d\n", os.Getpid())
		eof := make(chan struct{})
		go func() { io.Copy(io.Discard, os.Stdin); close(eof) }()
		select {
		case <-eof:
			return 0
		case <-sigs:
			fmt.Fprintln(os.Stdout, "term")
			return 7
		}
	case "ignore-term":
		// Say the pid and ignore SIGTERM until killed.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		fmt.Fprintf(os.Stdout, "%d\n", os.Getpid())
		for range sigs {
			fmt.Fprintln(os.Stdout, "ignored")
		}
		return 0
	case "fail":
		return 1
	case "echo":
		bufio.NewReader(os.Stdin).WriteTo(os.Stdout)
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
	return 2
}
