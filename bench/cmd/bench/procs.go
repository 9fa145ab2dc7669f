package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one server process the driver started. Every one is stopped by its
// pid (SIGTERM, then SIGKILL after a grace period), never by name.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

var (
	liveMu sync.Mutex
	live   = map[*proc]bool{}
)

// startProc starts argv with its stdout and stderr in logPath. extraEnv is
// added to the driver's environment.
func startProc(name string, argv []string, extraEnv []string, logPath string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	// As under an init system: every server starts in /, so none pays a
	// chdir per child that another is spared (every path given is
	// absolute).
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), extraEnv...)
	// Its own process group, so a Ctrl-C at the terminal reaches only the
	// driver, which then stops each server itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	liveMu.Lock()
	live[p] = true
	liveMu.Unlock()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to grace, then SIGKILL.
func (p *proc) stop(grace time.Duration) {
	defer func() {
		liveMu.Lock()
		delete(live, p)
		liveMu.Unlock()
	}()
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		warnf("%s (pid %d) did not exit after SIGKILL", p.name, p.pid())
	}
}

// stopAll stops every process still running (on an interrupt or a fatal
// error).
func stopAll() {
	liveMu.Lock()
	ps := make([]*proc, 0, len(live))
	for p := range live {
		ps = append(ps, p)
	}
	liveMu.Unlock()
	for _, p := range ps {
		p.stop(3 * time.Second)
	}
}

// logTail is the end of a process's log, for error messages.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return strings.TrimSpace(string(b))
}

// memKB reads VmRSS and VmHWM (peak RSS) of pid, in KiB.
func memKB(pid int) (rss, hwm int64, err error) {
	rss, hwm, _, err = memDetailKB(pid)
	return rss, hwm, err
}

// memDetailKB is memKB and RssAnon: the part of the RSS that is the
// process's own memory rather than pages of its executable and libraries
// (shared with every process that maps them).
func memDetailKB(pid int) (rss, hwm, anon int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS":
			rss = kbField(v)
		case "VmHWM":
			hwm = kbField(v)
		case "RssAnon":
			anon = kbField(v)
		}
	}
	return rss, hwm, anon, sc.Err()
}

func kbField(v string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	return n
}

// ctxSwitches sums voluntary and involuntary context switches over every
// thread of pid, and counts the threads.
func ctxSwitches(pid int) (sum int64, threads int, err error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil {
		return 0, 0, err
	}
	if len(tasks) == 0 {
		return 0, 0, fmt.Errorf("pid %d: no tasks", pid)
	}
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that just exited
		}
		threads++
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				sum += n
			}
		}
	}
	return sum, threads, nil
}

// Sockets in use, from the kernel's sock_diag netlink interface: it filters
// by state in the kernel, so finding 10,000 listening sockets among many
// TIME_WAIT ones stays cheap (unlike parsing /proc/net/tcp).

const (
	netlinkSockDiag  = 4
	sockDiagByFamily = 20
	tcpListen        = 10
)

// boundPorts returns the local ports of sockets of proto ("tcp": listening
// only; "udp": any) on IPv4 and IPv6.
func boundPorts(proto string) (map[int]bool, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, netlinkSockDiag)
	if err != nil {
		return nil, os.NewSyscallError("socket(netlink)", err)
	}
	defer syscall.Close(fd)
	ports := map[int]bool{}
	for seq, family := range []uint8{syscall.AF_INET, syscall.AF_INET6} {
		if err := diagDump(fd, uint32(seq+1), family, proto, ports); err != nil {
			return nil, err
		}
	}
	return ports, nil
}

func diagDump(fd int, seq uint32, family uint8, proto string, ports map[int]bool) error {
	req := make([]byte, 16+56)
	le := binary.LittleEndian // netlink headers are in host order; amd64 and arm64 are little-endian
	le.PutUint32(req[0:], uint32(len(req)))
	le.PutUint16(req[4:], sockDiagByFamily)
	le.PutUint16(req[6:], syscall.NLM_F_REQUEST|syscall.NLM_F_DUMP)
	le.PutUint32(req[8:], seq)
	// struct inet_diag_req_v2
	req[16] = family
	states := uint32(1 << tcpListen)
	if proto == "udp" {
		req[17] = syscall.IPPROTO_UDP
		states = 0xffffffff
	} else {
		req[17] = syscall.IPPROTO_TCP
	}
	le.PutUint32(req[20:], states)
	if err := syscall.Sendto(fd, req, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return os.NewSyscallError("sendto(netlink)", err)
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return os.NewSyscallError("recvfrom(netlink)", err)
		}
		b := buf[:n]
		for len(b) >= 16 {
			l := int(le.Uint32(b[0:]))
			typ := le.Uint16(b[4:])
			if l < 16 || l > len(b) {
				return fmt.Errorf("netlink: bad message length %d", l)
			}
			switch typ {
			case syscall.NLMSG_DONE:
				return nil
			case syscall.NLMSG_ERROR:
				return fmt.Errorf("netlink: sock_diag error %d", int32(le.Uint32(b[16:])))
			case sockDiagByFamily:
				// struct inet_diag_msg: family, state, timer, retrans,
				// then inet_diag_sockid whose first field is the source
				// port in network order.
				if l >= 16+8 {
					ports[int(binary.BigEndian.Uint16(b[16+4:]))] = true
				}
			}
			b = b[(l+3)&^3:]
		}
	}
}

// waitBound waits until every port in ports is bound for proto, or the
// process exits, or timeout passes. It returns how long that took.
func waitBound(p *proc, proto string, ports []int, start time.Time, timeout time.Duration) (time.Duration, error) {
	deadline := start.Add(timeout)
	for {
		have, err := boundPorts(proto)
		if err != nil {
			return 0, err
		}
		all := true
		for _, port := range ports {
			if !have[port] {
				all = false
				break
			}
		}
		if all {
			return time.Since(start), nil
		}
		if p != nil && p.exited() {
			return 0, fmt.Errorf("%s exited before listening: %v\n%s", p.name, p.err, p.logTail())
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s: not listening on all %d %s ports after %s", nameOf(p), len(ports), proto, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func nameOf(p *proc) string {
	if p == nil {
		return "server"
	}
	return p.name
}

// portsFree reports whether no socket of either protocol uses a port of
// [first, first+n).
func portsFree(first, n int) (bool, error) {
	for _, proto := range []string{"tcp", "udp"} {
		have, err := boundPorts(proto)
		if err != nil {
			return false, err
		}
		for port := first; port < first+n; port++ {
			if have[port] {
				return false, nil
			}
		}
	}
	return true, nil
}

// cpuModel names the CPU, for the report.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := strings.Cut(string(line), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// cpuTime is the user plus system CPU time of every thread of pid so far
// (from /proc/PID/stat, in clock ticks of 10 ms).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields resume after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("pid %d: bad stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("pid %d: bad stat", pid)
	}
	// Fields 14 and 15 of stat(5); f[0] is field 3.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("pid %d: bad stat", pid)
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(ut+st) * tick, nil
}
