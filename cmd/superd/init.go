package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
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
// superd as its only child, passes it every signal it gets, reaps every
// process handed to it, and exits with superd's status once superd is gone.

// underInitEnv marks the superd that superd's init started.
const underInitEnv = "SUPERD_UNDER_INIT"

// underInit reports that this superd runs under superd's init: it is a
// container's main program although its pid is not 1.
var underInit bool

// maybeInit runs superd's init when this process is PID 1 about to `run`,
// and reports whether it did, with the exit code. Where a service manager
// passed sockets (LISTEN_FDS, for this pid), superd serves as PID 1 itself
// instead: they would not survive the hand-over to a child.
func maybeInit(args []string) (code int, ran bool) {
	if os.Getenv(underInitEnv) != "" {
		underInit = true
		os.Unsetenv(underInitEnv)
		return 0, false
	}
	if os.Getpid() != 1 || len(args) == 0 || args[0] != "run" || os.Getenv("LISTEN_FDS") != "" {
		return 0, false
	}
	return runInit(args), true
}

func runInit(args []string) int {
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs) // every signal, before the child can exit
	// By its path rather than /proc/self/exe, so that its name (comm,
	// what ps and pgrep show) is superd's.
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	cmd := exec.Command(exe, args...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), underInitEnv+"=1")
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "superd: init: cannot start superd:", err)
		return exitRuntime
	}
	superd := cmd.Process.Pid
	// What ran to get here is not needed again; the loop below maps back
	// the little it uses (see "Code pages"). Once: orphans may come by
	// the thousand.
	// It allocates next to nothing from here on: with the collector off
	// the runtime has no periodic collection to wake up for.
	debug.SetGCPercent(-1)
	if drop, _ := idleUnmap(); drop {
		var code codePages
		code.drop()
	}
	for sig := range sigs {
		switch sig {
		case syscall.SIGCHLD:
			if code, done := reapAll(superd); done {
				return code
			}
		case syscall.SIGURG, syscall.SIGPIPE:
			// SIGURG is the Go runtime preempting its own goroutines;
			// SIGPIPE concerns this process's own writes.
		default:
			syscall.Kill(superd, sig.(syscall.Signal))
		}
	}
	return exitRuntime // not reached: sigs is never closed
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
