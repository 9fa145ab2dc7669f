package main

// Live upgrade (SIGUSR2). At any moment one or two superd processes serve,
// and at most one of them is not yet ready:
//
//  1. The running superd (old) starts its binary as it is on disk now, with
//     its own arguments, handing over every listening socket and the admin
//     listener from fd 3 on (LISTEN_FDS, as sd_listen_fds(3) but without
//     LISTEN_PID, which the parent cannot know before the fork) and two pipes:
//     SUPERD_UPGRADE_READY (new → old) and SUPERD_UPGRADE_FREED (old → new).
//     SUPERD_UPGRADE_HELD lists, one per line, the keys (canonical addresses)
//     of the sockets a wait-mode child of the old superd is serving right now.
//  2. The new superd loads its configuration, adopts each passed socket whose
//     address matches a configured listen (binding the rest), starts serving,
//     and writes "READY\n" to the ready pipe. Both processes now accept from
//     the same sockets, so no client is refused.
//  3. On READY the old superd closes its copies of the sockets (UNIX socket
//     files stay), stops its admin listener, and waits for its children to
//     finish; each time one of its wait-mode children exits it writes the
//     socket keys that child held, one per line, to the freed pipe, and the
//     new superd starts watching them. It exits 0 once no child is left.
//
// If the new process exits, fails its configuration, or is not ready within
// upgradeTimeout, the old one kills it if needed and keeps serving.

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/superd/superd/pkg/listener"
	"github.com/superd/superd/pkg/server"
)

const (
	envUpgradeReady = "SUPERD_UPGRADE_READY"
	envUpgradeFreed = "SUPERD_UPGRADE_FREED"
	envUpgradeHeld  = "SUPERD_UPGRADE_HELD"
	upgradeTimeout  = 60 * time.Second
	readyMessage    = "READY\n"
)

// upgradeIn is what a superd started by a live upgrade received.
type upgradeIn struct {
	ready, freed *os.File // nil when not started by an upgrade
	inherited    []listener.Inherited
	held         []string
}

// takeInherited collects the sockets this process was started with, by a
// service manager or by an upgrade, and clears the variables that said so.
func takeInherited() (upgradeIn, error) {
	var in upgradeIn
	readyFD, upgrading := os.LookupEnv(envUpgradeReady)
	freedFD := os.Getenv(envUpgradeFreed)
	heldKeys := os.Getenv(envUpgradeHeld)
	for _, k := range []string{envUpgradeReady, envUpgradeFreed, envUpgradeHeld} {
		os.Unsetenv(k)
	}
	inherited, err := listener.TakeInherited(upgrading)
	in.inherited = inherited
	if !upgrading {
		return in, err
	}
	in.ready = fdFile(readyFD, "upgrade-ready")
	in.freed = fdFile(freedFD, "upgrade-freed")
	for _, k := range strings.Split(heldKeys, "\n") {
		if k != "" {
			in.held = append(in.held, k)
		}
	}
	return in, err
}

func fdFile(s, name string) *os.File {
	fd, err := strconv.Atoi(s)
	if err != nil || fd < 3 {
		return nil
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), name)
}

// adminFrom takes the inherited socket matching the admin address, if any.
func (in *upgradeIn) adminFrom(addr string) (net.Listener, error) {
	want, err := listener.ParseAddress("tcp://" + addr)
	if err != nil {
		return nil, nil // not an IP literal: bind it normally
	}
	for i, s := range in.inherited {
		if s.Address == want {
			in.inherited = append(in.inherited[:i], in.inherited[i+1:]...)
			f := os.NewFile(uintptr(s.FD), "admin")
			defer f.Close()
			return net.FileListener(f)
		}
	}
	return nil, nil
}

// signalReady tells the old superd this one serves, and starts relaying its
// "socket freed" messages to the server.
func (in *upgradeIn) signalReady(log *zap.Logger, srv *server.Server) {
	if in.ready == nil {
		return
	}
	if _, err := in.ready.WriteString(readyMessage); err != nil {
		log.Error("cannot tell the previous superd we are ready", zap.Error(err))
	}
	in.ready.Close()
	if in.freed == nil {
		return
	}
	go func() {
		defer in.freed.Close()
		sc := bufio.NewScanner(in.freed)
		for sc.Scan() {
			srv.Release(sc.Text())
		}
	}()
}

// upgrader is the old side of an upgrade.
type upgrader struct {
	log   *zap.Logger
	srv   *server.Server
	exe   string
	admin net.Listener
	// notifySocket is passed on so the new superd can tell the service
	// manager its pid (systemd needs NotifyAccess=all for that).
	notifySocket string
}

// dupListener duplicates a listener's fd without what (*os.File).Fd would
// do to it: switch the shared open file description to blocking mode,
// which would leave this superd's own accept stuck in the kernel.
func dupListener(l net.Listener) (int, error) {
	rc, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		return -1, err
	}
	dup := -1
	cerr := rc.Control(func(fd uintptr) {
		dup, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3)
	})
	if cerr != nil {
		return -1, cerr
	}
	return dup, err
}

// start runs the new superd and waits for it to be ready. It returns the
// write end of the freed pipe and the new superd's pid on success; on
// failure the new process is gone and the old one keeps serving.
func (u *upgrader) start() (*os.File, int, error) {
	if os.Getpid() == 1 || underInit {
		// The old superd exits once the new one is ready, and the exit
		// of a PID namespace's init kills every process in it; superd's
		// own init (init.go) exits with the superd it started.
		return nil, 0, errors.New("superd is a container's main process (PID 1, or under superd's init): its exit would end the new superd with it; restart the container instead")
	}
	// Collected first, so that what this superd holds is what it keeps,
	// not garbage the collector has yet to find.
	debug.FreeOSMemory()
	if err := roomForUpgrade(readCgroupMemory(), heldMemory()); err != nil {
		return nil, 0, err
	}
	_, fds, busy, err := u.srv.Listening()
	if err != nil {
		u.srv.Resume()
		return nil, 0, err
	}
	files := []uintptr{0, 1, 2}
	for _, fd := range fds {
		files = append(files, uintptr(fd))
	}
	n := len(fds)
	if u.admin != nil {
		afd, err := dupListener(u.admin)
		if err != nil {
			u.srv.Resume()
			return nil, 0, fmt.Errorf("admin listener: %w", err)
		}
		defer unix.Close(afd)
		files = append(files, uintptr(afd))
		n++
	}
	var ready, freed [2]int
	if err := unix.Pipe2(ready[:], unix.O_CLOEXEC); err != nil {
		u.srv.Resume()
		return nil, 0, os.NewSyscallError("pipe2", err)
	}
	if err := unix.Pipe2(freed[:], unix.O_CLOEXEC); err != nil {
		unix.Close(ready[0])
		unix.Close(ready[1])
		u.srv.Resume()
		return nil, 0, os.NewSyscallError("pipe2", err)
	}
	readyR := os.NewFile(uintptr(ready[0]), "upgrade-ready")
	freedW := os.NewFile(uintptr(freed[1]), "upgrade-freed")
	files = append(files, uintptr(ready[1]), uintptr(freed[0]))
	env := upgradeEnv(n, len(files)-2, len(files)-1, busy, u.notifySocket)
	// Raw ForkExec: os.StartProcess would switch the passed sockets to
	// blocking mode, and they are shared with this process's loop.
	pid, err := syscall.ForkExec(u.exe, os.Args, &syscall.ProcAttr{Env: env, Files: files})
	unix.Close(ready[1])
	unix.Close(freed[0])
	if err != nil {
		readyR.Close()
		freedW.Close()
		u.srv.Resume()
		return nil, 0, fmt.Errorf("start %s: %w", u.exe, err)
	}
	u.log.Info("upgrade: new superd started; waiting for it to be ready", zap.Int("pid", pid), zap.Int("sockets", n))
	err = waitReady(readyR, upgradeTimeout)
	readyR.Close()
	if err != nil {
		freedW.Close()
		unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
		u.srv.Resume()
		return nil, 0, fmt.Errorf("new superd (pid %d) %w", pid, err)
	}
	u.log.Info("upgrade: new superd is ready; handing over", zap.Int("pid", pid))
	return freedW, pid, nil
}

func upgradeEnv(nfds, readyFD, freedFD int, held []string, notifySocket string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "LISTEN_") || strings.HasPrefix(k, "SUPERD_UPGRADE_") || k == "NOTIFY_SOCKET" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"LISTEN_FDS="+strconv.Itoa(nfds),
		envUpgradeReady+"="+strconv.Itoa(readyFD),
		envUpgradeFreed+"="+strconv.Itoa(freedFD),
		envUpgradeHeld+"="+strings.Join(held, "\n"),
	)
	if notifySocket != "" {
		env = append(env, "NOTIFY_SOCKET="+notifySocket)
	}
	return env
}

var errNotReady = errors.New("exited or failed before it was ready")

// waitReady waits for READY on r, for at most timeout.
func waitReady(r *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var got []byte
	buf := make([]byte, 64)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("was not ready within %s", timeout)
		}
		pfd := []unix.PollFd{{Fd: int32(r.Fd()), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, int(left.Milliseconds())+1); err != nil && err != unix.EINTR {
			return os.NewSyscallError("poll", err)
		}
		if pfd[0].Revents == 0 {
			continue
		}
		n, err := unix.Read(int(r.Fd()), buf)
		if n > 0 {
			got = append(got, buf[:n]...)
			if string(got) == readyMessage {
				return nil
			}
			continue
		}
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return errNotReady
	}
}

// roomForUpgrade refuses a live upgrade that the memory cgroup cannot hold:
// until this superd leaves, both run in it, and where the second one does
// not fit the OOM killer takes one of them, or both. A second superd
// needs about twice what this one holds (its own, and its start-up's
// garbage); measured with 10,000 UNIX-socket services, where this one
// held 22 MiB, it fitted with 51 MiB of room and was killed with 35 MiB
// or less. held is what this superd's runtime holds (heldMemory, idle.go).
func roomForUpgrade(cg cgroupMemory, held int64) error {
	need := max(2*held, minStartup)
	if cg.limit <= 0 || cg.room >= need {
		return nil
	}
	return fmt.Errorf("the memory cgroup %s has %d MiB left (page cache counted as free; the lowest limit on the way up is %d MiB), and a second superd needs about %d MiB (twice what this one holds): not starting one; raise that cgroup's limit (systemctl set-property ... MemoryMax= applies at once) and send SIGUSR2 again, or restart superd",
		cg.roomDir, cg.room>>20, cg.limit>>20, need>>20)
}
