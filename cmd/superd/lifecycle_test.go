package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestReloadUnderLoadLosesNoConnection sends SIGHUP every ~150 ms while a
// bounded client loop runs: the same config, a config adding a service, and
// an invalid config, in turn. No connection may fail; the added service
// must answer; the invalid config must be reported and change nothing.
func TestReloadUnderLoadLosesNoConnection(t *testing.T) {
	dir := worldDir(t)
	port, port2 := freePort(t), freePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	base := fmt.Sprintf(`
admin: {listen: "%s"}
log: {level: warn}
services:
  hello:
    listen: tcp://127.0.0.1:%d
    exec: [/bin/sh, -c, 'echo hi']
%s`, admin, port, userLine())
	added := base + fmt.Sprintf(`
  added:
    listen: tcp://127.0.0.1:%d
    exec: [/bin/sh, -c, 'echo added']
%s`, port2, userLine())
	invalid := base + "\n  broken:\n    listen: udp://127.0.0.1:1\n    mode: accept\n"
	cfg := writeFile(t, dir, "superd.yaml", base)
	r := startSuperd(t, cfg, admin)

	const total, workers = 2000, 8
	var next, failed, done atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	stop := time.Now().Add(3 * time.Minute) // a bound, never reached on a healthy run
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= total && time.Now().Before(stop) {
				c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
				if err == nil {
					c.SetDeadline(time.Now().Add(10 * time.Second))
					var b []byte
					b, err = io.ReadAll(c)
					c.Close()
					if err == nil && string(b) != "hi\n" {
						err = fmt.Errorf("read %q", b)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				done.Add(1)
			}
		}()
	}
	configs := []string{base, added, invalid}
	reloads := 0
	for done.Load() < total && time.Now().Before(stop) {
		replaceFile(t, cfg, []byte(configs[reloads%3]), 0o644)
		r.cmd.Process.Signal(syscall.SIGHUP)
		reloads++
		time.Sleep(150 * time.Millisecond) // the pace of reloads, not a synchronisation
	}
	wg.Wait()
	t.Logf("%d connections, %d failed, %d reloads", done.Load(), failed.Load(), reloads)
	if failed.Load() != 0 {
		t.Errorf("%d of %d connections failed during reloads; first: %v", failed.Load(), total, firstErr.Load())
	}
	if reloads < 3 {
		t.Fatalf("only %d reloads happened during the load", reloads)
	}

	// End on the config with the added service and check it answers.
	replaceFile(t, cfg, []byte(added), 0o644)
	r.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port2))
		if err == nil {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			b, _ := io.ReadAll(c)
			c.Close()
			if string(b) != "added\n" {
				t.Errorf("added service answered %q", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("added service never answered: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// An invalid config is reported with its position and changes nothing.
	replaceFile(t, cfg, []byte(invalid), 0o644)
	r.cmd.Process.Signal(syscall.SIGHUP)
	if !waitUntil(10*time.Second, func() bool {
		return strings.Contains(get(t, "http://"+admin+"/metrics"), "superd_config_last_reload_successful 0")
	}) {
		t.Fatal("invalid reload not reflected in superd_config_last_reload_successful")
	}
	if !strings.Contains(r.stderr.String(), cfg+":") || !strings.Contains(r.stderr.String(), "services.broken.mode") {
		t.Errorf("invalid config not reported with file:line:col and key:\n%s", r.stderr.String())
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port2)); err != nil {
		t.Errorf("the running config did not survive the bad reload: %v", err)
	} else {
		c.Close()
	}
	if code := r.stop(t); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestSdNotifyMessagesInOrder plays systemd's side of sd_notify: READY=1
// once sockets are bound, RELOADING=1 (with MONOTONIC_USEC) then READY=1
// around a reload, STOPPING=1 on SIGTERM — for a path socket and an
// abstract one.
func TestSdNotifyMessagesInOrder(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		t.Run(fmt.Sprintf("abstract=%v", abstract), func(t *testing.T) {
			dir := worldDir(t)
			name := filepath.Join(dir, "notify.sock")
			env := name
			if abstract {
				name = fmt.Sprintf("\x00superd-test-notify-%d", time.Now().UnixNano())
				env = "@" + name[1:]
			}
			ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			cfg := writeFile(t, dir, "superd.yaml", fmt.Sprintf(`
admin: {listen: "%s"}
services:
  hello:
    listen: tcp://127.0.0.1:%d
    exec: [/bin/true]
%s`, admin, freePort(t), userLine()))
			cmd := exec.Command(superdBin, "run", "-c", cfg)
			cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+env)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			read := func() string {
				t.Helper()
				ln.SetReadDeadline(time.Now().Add(20 * time.Second))
				buf := make([]byte, 4096)
				n, err := ln.Read(buf)
				if err != nil {
					t.Fatalf("no sd_notify message: %v", err)
				}
				return string(buf[:n])
			}
			if m := read(); !strings.Contains(m, "READY=1\n") || !strings.Contains(m, fmt.Sprintf("MAINPID=%d\n", cmd.Process.Pid)) {
				t.Errorf("first message %q, want READY=1 and MAINPID", m)
			}
			// READY comes after the sockets are bound: the admin
			// listener already answers.
			get(t, "http://"+admin+"/healthz")
			cmd.Process.Signal(syscall.SIGHUP)
			if m := read(); !strings.HasPrefix(m, "RELOADING=1\n") || !strings.Contains(m, "MONOTONIC_USEC=") {
				t.Errorf("on SIGHUP: %q, want RELOADING=1 with MONOTONIC_USEC", m)
			}
			if m := read(); !strings.HasPrefix(m, "READY=1\n") {
				t.Errorf("after reload: %q, want READY=1", m)
			}
			cmd.Process.Signal(syscall.SIGTERM)
			if m := read(); !strings.HasPrefix(m, "STOPPING=1\n") {
				t.Errorf("on SIGTERM: %q, want STOPPING=1", m)
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("superd: %v", err)
			}
		})
	}
}
