package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// superd as a container's init.
//
// The kernel hands every orphan in a PID namespace to its PID 1, which must
// reap it, or it stays a zombie until the namespace ends: a service whose
// program starts a background process and exits leaves one per
// connection. superd's loop waits for its own children by pidfd, and
// reaping any other child of the process safely would race with its
// spawners (a child that exits before the loop has recorded its pid looks
// like an orphan). So `superd run` started as PID 1 stays apart as a
// minimal init, as tini or `docker run --init` would be: it starts the real
// superd as its only child, passes on the signals meant for it (holding
// them until superd catches them itself), reaps every process handed to
// it, and exits with superd's status once superd is gone.

// underInitEnv marks the superd that superd's init started; its value is
// the fd superd closes once it handles signals itself (initMayForward).
const underInitEnv = "SUPERD_UNDER_INIT"

// underInit reports that this superd runs under superd's init: it is a
// container's main program although its pid is not 1.
var underInit bool

// initReady is the write end of the init's ready pipe, until
// initMayForward closes it; -1 when there is none.
var initReady = -1

// maybeInit runs superd's init when this process is PID 1 about to `run`,
// and reports whether it did, with the exit code. Where a service manager
// passed sockets to PID 1 (LISTEN_FDS with LISTEN_PID=1), superd serves
// as PID 1 itself instead: they would not survive the hand-over to a
// child.
func maybeInit(args []string) (code int, ran bool) {
	if v, ok := os.LookupEnv(underInitEnv); ok {
		underInit = true
		os.Unsetenv(underInitEnv)
		if fd, err := strconv.Atoi(v); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
			initReady = fd
		}
		return 0, false
	}
	if os.Getpid() != 1 || len(args) == 0 || args[0] != "run" ||
		(os.Getenv("LISTEN_FDS") != "" && os.Getenv("LISTEN_PID") == "1") {
		return 0, false
	}
	return runInit(args), true
}

// initMayForward tells superd's init, if superd runs under one, that
// superd now handles SIGTERM, SIGHUP and the rest itself: until then the
// init holds the signals it gets, which would have killed superd.
func initMayForward() {
	if initReady >= 0 {
		unix.Close(initReady)
		initReady = -1
	}
}

// notForwarded are the signals the init keeps to itself: SIGCHLD (its
// own business), the Go runtime's preemption signal, SIGPIPE (about its
// own writes), the terminal stops (PID 1 was never stopped by them, and a
// stopped superd would hang the container while it looks alive), and the
// signals a fault raises, which mean nothing sent to another process.
var notForwarded = map[syscall.Signal]bool{
	syscall.SIGCHLD: true, syscall.SIGURG: true, syscall.SIGPIPE: true,
	syscall.SIGTSTP: true, syscall.SIGTTIN: true, syscall.SIGTTOU: true,
	syscall.SIGSEGV: true, syscall.SIGBUS: true, syscall.SIGFPE: true,
	syscall.SIGILL: true, syscall.SIGTRAP: true, syscall.SIGSYS: true,
	syscall.SIGABRT: true,
}

func runInit(args []string) int {
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs) // every signal, before the child can exit
	// superd closes its end of this pipe once it catches signals itself
	// (or exits): signals are held until then.
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "superd: init:", err)
		return exitRuntime
	}
	// By its path rather than /proc/self/exe, so that its name (comm,
	// what ps and pgrep show) is superd's; as it was started where /proc
	// cannot say (not mounted).
	exe, err := os.Executable()
	if err != nil {
		if exe, err = exec.LookPath(os.Args[0]); err != nil {
			fmt.Fprintln(os.Stderr, "superd: init: cannot find superd's own executable:", err)
			return exitRuntime
		}
	}
	cmd := exec.Command(exe, args...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{w} // fd 3
	cmd.Env = append(os.Environ(), underInitEnv+"=3")
	err = cmd.Start()
	w.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "superd: init: cannot start superd:", err)
		return exitRuntime
	}
	superd := cmd.Process.Pid
	ready := make(chan struct{})
	go func() {
		io.Copy(io.Discard, r) // until EOF
		r.Close()
		close(ready)
	}()
	// It allocates next to nothing from here on: with the collector off
	// the runtime has no periodic collection to wake up for.
	debug.SetGCPercent(-1)
	// What ran to get here is not needed again; the loop below maps back
	// the little it uses (see "Code pages"). Once: orphans may come by
	// the thousand.
	if drop, _ := idleUnmap(); drop {
		var code codePages
		code.drop()
	}
	var held []syscall.Signal
	for {
		select {
		case <-ready:
			for _, sig := range held {
				syscall.Kill(superd, sig)
			}
			held, ready = nil, nil
		case s := <-sigs:
			sig := s.(syscall.Signal)
			switch {
			case sig == syscall.SIGCHLD:
				if code, done := reapAll(superd); done {
					return code
				}
			case notForwarded[sig]:
			case ready != nil:
				held = append(held, sig)
			default:
				syscall.Kill(superd, sig)
			}
		}
	}
}

// reapAll reaps every child that has exited, and reports superd's exit
// status once superd is among them (128+N for a signal N, as a shell
// does).
func reapAll(superd int) (code int, done bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return 0, false
		}
		if pid != superd {
			continue // an orphan: reaped, nothing more to do
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal()), true
		}
		return ws.ExitStatus(), true
	}
}
