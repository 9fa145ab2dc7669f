package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// asPID1 is `superd run -c cfg` to start as the init of a new PID
// namespace, as a container runtime does; the test skips where no PID
// namespace can be made.
func asPID1(t *testing.T, cfg string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a PID namespace needs root")
	}
	cmd := exec.Command(superdBin, "run", "-c", cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	// Root in a container may not create namespaces.
	probe := exec.Command("/bin/true")
	probe.SysProcAttr = cmd.SysProcAttr
	if err := probe.Run(); err != nil {
		t.Skipf("cannot start a process in a new PID namespace here: %v", err)
	}
	return cmd
}

// startAsPID1 starts superd as PID 1 (asPID1) and waits until it serves.
func startAsPID1(t *testing.T, cfg, admin string) *running {
	t.Helper()
	return startCommand(t, asPID1(t, cfg), admin)
}

// nsProcess is a process of a PID namespace as seen from the test's.
type nsProcess struct {
	pid, ppid int
	comm      string
	state     string
}

// procStat reads /proc/PID/stat: the command name, and the fields after
// it (state, ppid, ...; utime is f[11]). The name may hold spaces and
// parentheses, so it ends at the last ')'.
func procStat(pid int) (comm string, f []string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", nil, err
	}
	s := string(b)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return "", nil, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return s[open+1 : close], strings.Fields(s[close+1:]), nil
}

// namespaceProcesses lists the processes in init's PID namespace.
func namespaceProcesses(init int) []nsProcess {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", init))
	if err != nil {
		return nil
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []nsProcess
	for _, d := range dirs {
		if l, err := os.Readlink(d + "/ns/pid"); err != nil || l != ns {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		comm, f, err := procStat(pid)
		if err != nil || len(f) < 2 {
			continue
		}
		p := nsProcess{pid: pid, comm: comm, state: f[0]}
		p.ppid, _ = strconv.Atoi(f[1])
		out = append(out, p)
	}
	return out
}

// initChildren lists the children of the process init.
func initChildren(init int) []nsProcess {
	var kids []nsProcess
	for _, p := range namespaceProcesses(init) {
		if p.ppid == init {
			kids = append(kids, p)
		}
	}
	return kids
}

// initChild returns the one child of superd's init (pid init here): the
// serving superd, by its pid here and in its own PID namespace, named
// superd in ps.
func initChild(t *testing.T, init int) (pid, nsPid int) {
	t.Helper()
	kids := initChildren(init)
	if len(kids) != 1 || kids[0].comm != "superd" {
		t.Fatalf("superd's init has children %+v, want one superd", kids)
	}
	pid = kids[0].pid
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" {
			nsPid, _ = strconv.Atoi(f[len(f)-1])
		}
	}
	if nsPid <= 1 {
		t.Fatalf("superd (pid %d) has no pid of its own in the namespace:\n%s", pid, status)
	}
	return pid, nsPid
}

// TestInitReapsOrphansAndPassesSignals runs superd as a container's PID 1
// with a service whose program leaves a background process behind. The
// kernel hands that orphan to PID 1 — superd's init — which must reap it
// when it exits, or it stays a zombie for the container's life. SIGTERM
// to PID 1 reaches the serving superd (SIGTSTP does not), and the init
// exits with its status.
func TestInitReapsOrphansAndPassesSignals(t *testing.T) {
	dir := worldDir(t)
	port, admin := freePort(t), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := writeFile(t, dir, "superd.yaml", fmt.Sprintf(`
admin: {listen: "%s"}
services:
  leaver:
    listen: tcp://127.0.0.1:%d
    exec: [/bin/sh, -c, 'sleep 60 </dev/null >/dev/null 2>&1 & echo left']
%s`, admin, port, userLine()))
	r := startAsPID1(t, cfg, admin)
	init := r.cmd.Process.Pid
	superd, _ := initChild(t, init)

	if got, err := answer(fmt.Sprintf("127.0.0.1:%d", port)); err != nil || got != "left" {
		t.Fatalf("service answered %q, %v", got, err)
	}
	var orphan int
	orphaned := func() bool {
		for _, p := range namespaceProcesses(init) {
			if p.comm == "sleep" && p.ppid == init {
				orphan = p.pid
				return true
			}
		}
		return false
	}
	if !waitUntil(10*time.Second, orphaned) {
		t.Fatalf("the background sleep never became PID 1's: %+v", namespaceProcesses(init))
	}
	syscall.Kill(orphan, syscall.SIGKILL)
	// Once it has exited, only the init and superd are left: the orphan
	// was reaped, not kept as a zombie.
	onlyTwo := func() bool {
		ps := namespaceProcesses(init)
		return len(ps) == 2 && ps[0].state != "Z" && ps[1].state != "Z"
	}
	if !waitUntil(10*time.Second, onlyTwo) {
		t.Fatalf("after the orphan's exit the namespace holds %+v, want only the init (%d) and superd (%d)",
			namespaceProcesses(init), init, superd)
	}
	// A terminal's stop signal is not passed on: a stopped superd would
	// not act on the SIGTERM after it, and the init would not exit.
	r.cmd.Process.Signal(syscall.SIGTSTP)
	if code := r.stop(t); code != 0 {
		t.Errorf("init exited %d after SIGTSTP and SIGTERM, want superd's 0", code)
	}
	if !strings.Contains(r.stderr.String(), "signal received; stopping") {
		t.Errorf("superd did not log the SIGTERM passed on:\n%s", r.stderr.String())
	}
}

// TestInitExitsWithSuperdsStatus: superd killed by a signal ends its init
// with 128 + the signal's number, as a shell reports it.
func TestInitExitsWithSuperdsStatus(t *testing.T) {
	cfg, _, admin := upgradeConfig(t, worldDir(t))
	r := startAsPID1(t, cfg, admin)
	superd, _ := initChild(t, r.cmd.Process.Pid)
	syscall.Kill(superd, syscall.SIGKILL)
	select {
	case err := <-r.exited:
		r.exited <- err
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 128+int(syscall.SIGKILL) {
			t.Errorf("init ended with %v, want exit %d", err, 128+int(syscall.SIGKILL))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the init did not exit after superd was killed")
	}
}

// TestInitHoldsSignalsUntilSuperdCatchesThem sends SIGTERM as soon as the
// init has started superd, while superd most likely still starts up: the
// init holds it until superd catches signals, and superd then stops as
// asked (exit 0) instead of being killed by it (143).
func TestInitHoldsSignalsUntilSuperdCatchesThem(t *testing.T) {
	cfg, _, _ := upgradeConfig(t, worldDir(t))
	cmd := asPID1(t, cfg)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()
	// The init catches signals before it starts superd.
	started := func() bool { return len(initChildren(cmd.Process.Pid)) > 0 }
	if !waitUntil(10*time.Second, started) {
		t.Fatal("the init started no superd")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("SIGTERM during start-up: %v, want exit 0\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("SIGTERM during start-up: the init did not exit")
	}
}

// TestSocketsPassedToPID1AreServedWithoutInit: a superd started as PID 1
// with sockets meant for it (LISTEN_FDS, LISTEN_PID=1) serves them itself,
// as PID 1, since they would not survive a hand-over to a child; it
// refuses a live upgrade there too.
func TestSocketsPassedToPID1AreServedWithoutInit(t *testing.T) {
	cfg, addr, admin := upgradeConfig(t, worldDir(t))
	cmd := asPID1(t, cfg)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd.ExtraFiles = []*os.File{f}
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_PID=1")
	r := startCommand(t, cmd, admin)
	f.Close()
	if ps := namespaceProcesses(r.cmd.Process.Pid); len(ps) != 1 {
		t.Errorf("the namespace holds %+v, want superd alone", ps)
	}
	// Served at all means adopted: had superd not taken the socket, it
	// would have held it unused and failed to bind the address itself.
	if got, err := ppidOf(addr); err != nil || got != 1 {
		t.Errorf("served by %d (%v), want superd as PID 1", got, err)
	}
	r.cmd.Process.Signal(syscall.SIGUSR2)
	const refused = "superd is a container's main process"
	if !waitUntil(30*time.Second, func() bool { return strings.Contains(r.stderr.String(), refused) }) {
		t.Fatalf("no %q in the log:\n%s", refused, r.stderr.String())
	}
	if code := r.stop(t); code != 0 {
		t.Errorf("exit %d", code)
	}
}
