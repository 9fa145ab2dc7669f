package main

import (
	"errors"
	"fmt"
	"io"
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

// startAsPID1 starts `superd run -c cfg` as the init of a new PID
// namespace, as a container runtime does, and waits until it serves.
func startAsPID1(t *testing.T, cfg, admin string) *running {
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
	return startCommand(t, cmd, admin)
}

// nsProcess is a process of a PID namespace as seen from the test's.
type nsProcess struct {
	pid, ppid int
	comm      string
	state     string
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
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at
		// the last ')'.
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(s[close+1:])
		if len(f) < 2 {
			continue
		}
		p := nsProcess{comm: s[open+1 : close], state: f[0]}
		p.pid, _ = strconv.Atoi(filepath.Base(d))
		p.ppid, _ = strconv.Atoi(f[1])
		out = append(out, p)
	}
	return out
}

// TestInitReapsOrphansAndPassesSignals runs superd as a container's PID 1
// with a service whose program leaves a background process behind. The
// kernel hands that orphan to PID 1 — superd's init — which must reap it
// when it exits, or it stays a zombie for the container's life. SIGTERM
// to PID 1 reaches the serving superd, and the init exits with its status.
func TestInitReapsOrphansAndPassesSignals(t *testing.T) {
	dir := worldDir(t)
	port, admin := freePort(t), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := writeFile(t, dir, "superd.yaml", fmt.Sprintf(`
admin: {listen: "%s"}
services:
  leaver:
    listen: tcp://127.0.0.1:%d
    exec: [/bin/sh, -c, 'sleep 1 </dev/null >/dev/null 2>&1 & echo left']
%s`, admin, port, userLine()))
	r := startAsPID1(t, cfg, admin)
	init := r.cmd.Process.Pid
	superd, _ := initChild(t, init)

	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	c.Close()
	if err != nil || strings.TrimSpace(string(b)) != "left" {
		t.Fatalf("service answered %q, %v", b, err)
	}
	orphaned := func() bool {
		for _, p := range namespaceProcesses(init) {
			if p.comm == "sleep" && p.ppid == init {
				return true
			}
		}
		return false
	}
	if !waitUntil(10*time.Second, orphaned) {
		t.Fatalf("the background sleep never became PID 1's: %+v", namespaceProcesses(init))
	}
	// Once it has exited, only the init and superd are left: the orphan
	// was reaped, not kept as a zombie.
	onlyTwo := func() bool {
		ps := namespaceProcesses(init)
		return len(ps) == 2 && ps[0].state != "Z" && ps[1].state != "Z"
	}
	for _, p := range namespaceProcesses(init) {
		if p.pid == superd && p.comm != "superd" {
			t.Errorf("the serving superd is named %q in ps, want superd", p.comm)
		}
	}
	if !waitUntil(10*time.Second, onlyTwo) {
		t.Fatalf("after the orphan's exit the namespace holds %+v, want only the init (%d) and superd (%d)",
			namespaceProcesses(init), init, superd)
	}
	if code := r.stop(t); code != 0 {
		t.Errorf("init exited %d after SIGTERM, want superd's 0", code)
	}
	if !strings.Contains(r.stderr.String(), "signal received; stopping") {
		t.Errorf("superd did not log the SIGTERM passed on:\n%s", r.stderr.String())
	}
}

// TestInitExitsWithSuperdsStatus: a superd that cannot start (here, an
// invalid configuration: exit 1) ends the init with the same status.
func TestInitExitsWithSuperdsStatus(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a PID namespace needs root")
	}
	cfg := writeFile(t, t.TempDir(), "superd.yaml", "services:\n  x:\n    listen: nowhere\n")
	cmd := exec.Command(superdBin, "run", "-c", cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		t.Fatal("superd with an invalid configuration exited 0 as PID 1")
	case !errors.As(err, &exit):
		t.Skipf("cannot start a process in a new PID namespace here: %v", err)
	case exit.ExitCode() != exitConfig:
		t.Errorf("exit %d, want %d (a configuration error)\n%s", exit.ExitCode(), exitConfig, stderr.String())
	}
	if !strings.Contains(stderr.String(), "superd.yaml:3:") {
		t.Errorf("the configuration error did not reach stderr:\n%s", stderr.String())
	}
}
