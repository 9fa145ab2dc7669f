package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// copyBinary puts a copy of superd at a path the test may replace, as a
// package upgrade replaces /usr/sbin/superd.
func copyBinary(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(superdBin)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "superd")
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// answer connects to a TCP service and reads what it says until it
// closes, without surrounding white space.
func answer(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	return strings.TrimSpace(string(b)), err
}

// ppidOf asks the service for its child's parent pid: which superd served.
func ppidOf(addr string) (int, error) {
	s, err := answer(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// killLater stops a process that is not the test's child (a new superd
// reparented away from the test) when the test ends.
func killLater(t *testing.T, pid int) {
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGKILL)
	})
}

func upgradeConfig(t *testing.T, dir string) (cfg, addr, admin string) {
	port := freePort(t)
	admin = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	cfg = writeFile(t, dir, "superd.yaml", fmt.Sprintf(`
admin: {listen: "%s"}
services:
  who:
    listen: tcp://%s
    exec: [/bin/sh, -c, 'echo $PPID']
%s`, admin, addr, userLine()))
	return cfg, addr, admin
}

func startCopy(t *testing.T, bin, cfg, admin string) *running {
	t.Helper()
	saved := superdBin
	superdBin = bin
	defer func() { superdBin = saved }()
	return startSuperd(t, cfg, admin)
}

// TestLiveUpgradeUnderLoadRefusesNothing sends SIGUSR2 while a bounded
// client loop runs: every connection must succeed, the superd serving new
// connections must change, and the old one must exit 0.
func TestLiveUpgradeUnderLoadRefusesNothing(t *testing.T) {
	dir := worldDir(t)
	bin := copyBinary(t, dir)
	cfg, addr, admin := upgradeConfig(t, dir)
	r := startCopy(t, bin, cfg, admin)
	oldPID := r.cmd.Process.Pid

	const total, workers = 1500, 8
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var mu sync.Mutex
	servedBy := map[int]int{}
	var wg sync.WaitGroup
	deadline := time.Now().Add(3 * time.Minute)
	signalled := make(chan struct{})
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > total || time.Now().After(deadline) {
					return
				}
				if i == total/3 {
					r.cmd.Process.Signal(syscall.SIGUSR2)
					close(signalled)
				}
				ppid, err := ppidOf(addr)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				mu.Lock()
				servedBy[ppid]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	<-signalled
	if failed.Load() != 0 {
		t.Errorf("%d of %d connections failed during the upgrade; first: %v", failed.Load(), total, firstErr.Load())
	}
	// The old superd exits 0 once its children are done.
	select {
	case err := <-r.exited:
		r.exited <- err
		if err != nil {
			t.Errorf("old superd: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("old superd did not exit after the upgrade")
	}
	newPID, err := ppidOf(addr)
	if err != nil {
		t.Fatalf("after the upgrade: %v", err)
	}
	killLater(t, newPID)
	t.Logf("served by %v; old pid %d, new pid %d, %d failed", servedBy, oldPID, newPID, failed.Load())
	if newPID == oldPID || servedBy[newPID] == 0 {
		t.Errorf("connections after the upgrade still served by the old pid %d (now %d)", oldPID, newPID)
	}
	if !strings.Contains(get(t, "http://"+admin+"/metrics"), "superd_build_info") {
		t.Error("the new superd's admin listener does not answer")
	}
	if !strings.Contains(r.stderr.String(), "upgrade: new superd is ready; handing over") {
		t.Errorf("old superd did not log the hand-over:\n%s", r.stderr.String())
	}
	syscall.Kill(newPID, syscall.SIGTERM)
}

// TestLiveUpgradeFailureKeepsTheOldOneServing replaces the binary with one
// that fails, then with a config that is invalid: each SIGUSR2 fails and the
// running superd goes on serving.
func TestLiveUpgradeFailureKeepsTheOldOneServing(t *testing.T) {
	dir := worldDir(t)
	bin := copyBinary(t, dir)
	good, _ := os.ReadFile(bin)
	cfg, addr, admin := upgradeConfig(t, dir)
	r := startCopy(t, bin, cfg, admin)
	pid := r.cmd.Process.Pid

	waitLog := func(what string, n int) {
		t.Helper()
		if !waitUntil(90*time.Second, func() bool { return strings.Count(r.stderr.String(), what) >= n }) {
			t.Fatalf("no %q in the log:\n%s", what, r.stderr.String())
		}
	}
	check := func(when string) {
		t.Helper()
		got, err := ppidOf(addr)
		if err != nil || got != pid {
			t.Errorf("%s: served by %d (%v), want the running superd %d", when, got, err, pid)
		}
	}

	replaceFile(t, bin, []byte("#!/bin/sh\nexit 3\n"), 0o755)
	r.cmd.Process.Signal(syscall.SIGUSR2)
	waitLog("upgrade failed; this superd keeps serving", 1)
	check("after a broken binary")

	replaceFile(t, bin, good, 0o755)
	replaceFile(t, cfg, []byte("services:\n  x: {listen: 'udp://127.0.0.1:1', mode: accept}\n"), 0o644)
	r.cmd.Process.Signal(syscall.SIGUSR2)
	waitLog("upgrade failed; this superd keeps serving", 2)
	check("after an invalid config")
	if code := r.stop(t); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestLiveUpgradeRefusedAsPID1 runs superd as the init of a PID namespace,
// as in a container (where superd's init starts the serving superd): a
// live upgrade would end with the old superd's exit, which ends the init
// and the namespace with the new superd in it. superd refuses and goes on
// serving; the init passes SIGUSR2 and SIGTERM on.
func TestLiveUpgradeRefusedAsPID1(t *testing.T) {
	cfg, addr, admin := upgradeConfig(t, worldDir(t))
	r := startAsPID1(t, cfg, admin)
	r.cmd.Process.Signal(syscall.SIGUSR2)
	const refused = "upgrade failed; this superd keeps serving"
	if !waitUntil(30*time.Second, func() bool { return strings.Contains(r.stderr.String(), refused) }) {
		t.Fatalf("no %q in the log:\n%s", refused, r.stderr.String())
	}
	if !strings.Contains(r.stderr.String(), "superd is a container's main process") {
		t.Errorf("the refusal does not say why:\n%s", r.stderr.String())
	}
	// Its child sees superd as its parent: the init's child.
	_, nsPid := initChild(t, r.cmd.Process.Pid)
	if got, err := ppidOf(addr); err != nil || got != nsPid {
		t.Errorf("after the refusal: served by %d (%v), want superd, PID %d in its namespace", got, err, nsPid)
	}
	if code := r.stop(t); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestSocketActivatedSuperdAdoptsInheritedSockets plays systemd: the test
// binds the socket, passes it as fd 3 with LISTEN_FDS/LISTEN_PID, and
// connects through it. An inherited socket no listen matches is closed.
func TestSocketActivatedSuperdAdoptsInheritedSockets(t *testing.T) {
	dir := worldDir(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stray, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, _ := ln.(*net.TCPListener).File()
	sf, _ := stray.(*net.TCPListener).File()
	addr := ln.Addr().String()
	strayAddr := stray.Addr().String()
	ln.Close()
	stray.Close()
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := writeFile(t, dir, "superd.yaml", fmt.Sprintf(`
admin: {listen: "%s"}
services:
  adopted:
    listen: tcp://%s
    exec: [/bin/sh, -c, 'echo adopted']
%s`, admin, addr, userLine()))
	// LISTEN_PID must be superd's own pid: a shell that execs superd
	// keeps its pid.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=a:b exec "$0" run -c "$1"`, superdBin, cfg)
	cmd.ExtraFiles = []*os.File{lf, sf}
	stderr := newLogFile(t)
	cmd.Stderr = stderr.f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	sf.Close()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("superd stderr:\n%s", stderr.String())
		}
	}()
	if !waitUntil(20*time.Second, func() bool {
		resp, err := http.Get("http://" + admin + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}) {
		t.Fatal("superd did not start")
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(c)
	c.Close()
	if string(b) != "adopted\n" {
		t.Errorf("adopted socket answered %q", b)
	}
	if !strings.Contains(stderr.String(), "inherited socket matches no configured listen") {
		t.Errorf("stray inherited socket not reported")
	}
	if c, err := net.Dial("tcp", strayAddr); err == nil {
		c.Close()
		t.Errorf("the stray inherited socket %s still accepts", strayAddr)
	}
}
