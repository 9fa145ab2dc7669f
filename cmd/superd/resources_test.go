package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cpuSeconds is a process's user+system CPU time from /proc.
func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	_, f, err := procStat(pid)
	if err != nil || len(f) < 13 {
		t.Fatalf("stat of %d: %v", pid, err)
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestEMFILEFloodNeitherSpinsNorLeaks runs superd with RLIMIT_NOFILE just
// above what it holds idle and floods it with connections that stay open:
// accept fails with EMFILE again and again. superd must pause instead of
// spinning, count the refusals, serve again once the flood ends, and leak
// no fd.
func TestEMFILEFloodNeitherSpinsNorLeaks(t *testing.T) {
	dir := worldDir(t)
	port := freePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := writeFile(t, dir, "superd.yaml", fmt.Sprintf(`
admin: {listen: "%s"}
log: {level: error}
services:
  holder:
    listen: tcp://%s
    max_instances: 0
    exec: [/bin/sh, -c, 'echo hi; read x']
%s`, admin, addr, userLine()))
	r := startSuperd(t, cfg, admin)
	pid := r.cmd.Process.Pid
	baseline := fdCount(t, pid)

	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Fatal(err)
	}
	low := unix.Rlimit{Cur: uint64(baseline + 6), Max: old.Max}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &low, nil); err != nil {
		t.Fatal(err)
	}

	// The flood: 200 clients that connect and stay (bounded in count and
	// by a 2 s window).
	const clients = 200
	cpu0 := cpuSeconds(t, pid)
	start := time.Now()
	var conns []net.Conn
	for i := 0; i < clients && time.Since(start) < 2*time.Second; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			continue // the backlog may fill; that is the point
		}
		conns = append(conns, c)
	}
	for time.Since(start) < 2*time.Second {
		time.Sleep(50 * time.Millisecond) // keep the flood up for its window; what we measure is CPU over it
	}
	cpu := cpuSeconds(t, pid) - cpu0
	window := time.Since(start)
	t.Logf("%d connections held; superd used %.2fs CPU over %.1fs of EMFILE flood", len(conns), cpu, window.Seconds())
	if cpu > 0.5*window.Seconds() {
		t.Errorf("superd used %.2fs CPU over %.1fs: it spins on EMFILE", cpu, window.Seconds())
	}

	// The flood ends: clients go, the limit comes back.
	for _, c := range conns {
		c.Close()
	}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &old, nil); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(30*time.Second, func() bool { return readHi(addr) }) {
		t.Fatal("superd does not serve again after the flood")
	}
	metrics := get(t, "http://"+admin+"/metrics")
	if !strings.Contains(metrics, `superd_connections_rejected_total{reason="resources",service="holder"}`) ||
		strings.Contains(metrics, `superd_connections_rejected_total{reason="resources",service="holder"} 0`) {
		t.Errorf("no resources rejection counted:\n%s", grepLines(metrics, "rejected"))
	}
	// Every child gone, every fd back: the count returns to the baseline
	// (the admin connection we just used may still be closing).
	if !waitUntil(30*time.Second, func() bool { return fdCount(t, pid) <= baseline+1 }) {
		t.Fatalf("superd holds %d fds after the flood, %d before", fdCount(t, pid), baseline)
	}
	if code := r.stop(t); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// firstLine connects to addr and returns the service's first line ("" if
// it closes without one), or the dial error. A line is enough: a service
// may hold the connection open after it.
func firstLine(addr string) string {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return line
}

// readHi says whether the `echo hi` service at addr answers.
func readHi(addr string) bool { return firstLine(addr) == "hi\n" }

func grepLines(text, word string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestCrashLoopingWaitChildIsBackedOff gives a UDP wait-mode service a
// program that fails at once and never reads its socket: the datagram stays,
// the socket stays readable, and only the back-off stands between superd
// and a fork loop. The pauses must double and superd's CPU stay low.
func TestCrashLoopingWaitChildIsBackedOff(t *testing.T) {
	dir := worldDir(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	udpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := writeFile(t, dir, "superd.yaml", fmt.Sprintf(`
admin: {listen: "%s"}
services:
  crashy:
    listen: udp://%s
    exec: [/bin/false]
%s`, admin, udpAddr, userLine()))
	r := startSuperd(t, cfg, admin)
	pid := r.cmd.Process.Pid
	c, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cpu0 := cpuSeconds(t, pid)
	begin := time.Now()
	c.Write([]byte("never read"))
	// Wait for the third back-off (4s): by then the child ran three times.
	if !waitUntil(30*time.Second, func() bool { return strings.Contains(r.stderr.String(), `"pause": 4}`) }) {
		t.Fatalf("no third back-off:\n%s", r.stderr.String())
	}
	took := time.Since(begin)
	cpu := cpuSeconds(t, pid) - cpu0
	starts := strings.Count(r.stderr.String(), "activation")
	t.Logf("%d starts in %.1fs, superd CPU %.2fs", starts, took.Seconds(), cpu)
	for _, want := range []string{`"pause": 1}`, `"pause": 2}`, `"pause": 4}`} {
		if !strings.Contains(r.stderr.String(), want) {
			t.Errorf("back-off %s not logged", want)
		}
	}
	if starts != 3 {
		t.Errorf("%d starts before the third back-off, want 3", starts)
	}
	if took < 3*time.Second {
		t.Errorf("three starts within %v: the 1s and 2s back-offs were not kept", took)
	}
	if cpu > 0.5 {
		t.Errorf("superd used %.2fs CPU while backing off", cpu)
	}
}

// TestForkFailureIsCountedPausedAndRecovered puts superd in a pids cgroup
// whose limit is the tasks it has: fork fails with EAGAIN, as on a host
// whose process table is full. superd must count spawn_error, stay up,
// rest the listener rather than spin, and serve again once the limit goes.
func TestForkFailureIsCountedPausedAndRecovered(t *testing.T) {
	const pidsRoot = "/sys/fs/cgroup/pids"
	if st, err := os.Stat(pidsRoot); err != nil || !st.IsDir() || os.Geteuid() != 0 {
		t.Skip("needs root and a cgroup v1 pids hierarchy")
	}
	cg := fmt.Sprintf("%s/superd-test-%d", pidsRoot, os.Getpid())
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Skipf("cannot make a pids cgroup: %v", err)
	}
	dir := worldDir(t)
	port := freePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := writeFile(t, dir, "superd.yaml", fmt.Sprintf(`
admin: {listen: "%s"}
services:
  hi:
    listen: tcp://%s
    exec: [/bin/sh, -c, 'echo hi']
%s`, admin, addr, userLine()))
	r := startSuperd(t, cfg, admin)
	pid := r.cmd.Process.Pid
	t.Cleanup(func() {
		// Move superd back out, so the cgroup can go.
		os.WriteFile(pidsRoot+"/cgroup.procs", []byte(strconv.Itoa(pid)), 0)
		os.Remove(cg)
	})
	read := func() string { return firstLine(addr) }
	// Warm up: the runtime has the threads it needs for spawning.
	for i := 0; i < 8; i++ {
		if got := read(); got != "hi\n" {
			t.Fatalf("before the limit: %q", got)
		}
	}
	if err := os.WriteFile(cg+"/cgroup.procs", []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Skipf("cannot move superd into the cgroup: %v", err)
	}
	cur, err := os.ReadFile(cg + "/pids.current")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cg+"/pids.max", cur, 0); err != nil {
		t.Fatal(err)
	}
	cpu0 := cpuSeconds(t, pid)
	for i := 0; i < 5; i++ {
		if got := read(); got != "" {
			t.Errorf("with no process to spare, connection %d got %q, want it closed", i, got)
		}
	}
	cpu := cpuSeconds(t, pid) - cpu0
	if err := os.WriteFile(cg+"/pids.max", []byte("max"), 0); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("superd died when fork failed: %v", err)
	}
	if !waitUntil(10*time.Second, func() bool { return readHi(addr) }) {
		t.Fatal("superd does not serve again once processes are available")
	}
	metrics := get(t, "http://"+admin+"/metrics")
	if !strings.Contains(metrics, `superd_connections_rejected_total{reason="spawn_error",service="hi"} 5`) {
		t.Errorf("spawn errors not counted:\n%s", grepLines(metrics, "rejected"))
	}
	if !strings.Contains(r.stderr.String(), "out of resources to start children") {
		t.Error("the listener was not rested after fork failed")
	}
	t.Logf("superd used %.2fs CPU over 5 failed forks", cpu)
}

// TestManyServicesStartInASmallMemoryCgroup starts superd with 10,000
// services in a memory cgroup of 64 MiB. Running, superd holds less than
// half of that; starting, with the collector off, it once held ~100 MB
// and the kernel's OOM killer ended it. It must read the cgroup's limit
// and keep its start-up within it.
func TestManyServicesStartInASmallMemoryCgroup(t *testing.T) {
	r, cg, v2, last := startInMemoryCgroup(t, 64<<20)
	checkNoOOMKill(t, r, cg, v2, last)
}

// A live upgrade runs two superds in the cgroup: where the second cannot
// fit, superd must refuse to start it rather than let the OOM killer take
// one or both (in 64 MiB with 10,000 services it took both).
func TestLiveUpgradeRefusedWhereTheCgroupHasNoRoom(t *testing.T) {
	r, cg, v2, last := startInMemoryCgroup(t, 64<<20)
	r.cmd.Process.Signal(syscall.SIGUSR2)
	if !waitUntil(10*time.Second, func() bool { return strings.Contains(r.stderr.String(), "not starting one") }) {
		t.Fatalf("no refusal logged:\n%s", r.stderr.String())
	}
	checkNoOOMKill(t, r, cg, v2, last)
}

// startInMemoryCgroup starts superd with 10,000 services in a memory
// cgroup limited to limit bytes; last is the last service's socket.
func startInMemoryCgroup(t *testing.T, limit int64) (r *running, cg string, v2 bool, last string) {
	t.Helper()
	const services = 10000
	var lim unix.Rlimit
	if os.Geteuid() != 0 || unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil || lim.Cur < services+1000 {
		t.Skip("needs root and room for 11,000 open files")
	}
	cg, v2 = makeMemoryCgroup(t, limit)
	dir := worldDir(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	// Abstract sockets: 10,000 names no other test can take.
	prefix := fmt.Sprintf("superd-test-%d-%s", os.Getpid(), t.Name())
	var b strings.Builder
	fmt.Fprintf(&b, "admin: {listen: %q}\nlog: {level: warn}\ndefaults: {user: nobody}\nservices:\n", admin)
	for i := range services {
		fmt.Fprintf(&b, "  s%d: {listen: \"unix://@%s-%d\", exec: [/bin/true]}\n", i, prefix, i)
	}
	cfg := writeFile(t, dir, "superd.yaml", b.String())
	r = startCommand(t, exec.Command("/bin/sh", "-c", `echo $$ > "$1/cgroup.procs" && exec "$2" run -c "$3"`,
		"sh", cg, superdBin, cfg), admin)
	return r, cg, v2, fmt.Sprintf("@%s-%d", prefix, services-1)
}

// checkNoOOMKill checks that the OOM killer spared the cgroup cg and that
// superd still serves the socket last.
func checkNoOOMKill(t *testing.T, r *running, cg string, v2 bool, last string) {
	t.Helper()
	c, err := net.Dial("unix", last)
	if err != nil {
		t.Fatalf("the last service does not listen: %v", err)
	}
	c.Close()
	events := "memory.oom_control"
	if v2 {
		events = "memory.events"
	}
	text, err := os.ReadFile(cg + "/" + events)
	if err != nil {
		t.Fatal(err)
	}
	if n := fieldValue(string(text), "oom_kill"); n != "0" && n != "" { // "": a kernel before 4.13
		t.Errorf("%s: oom_kill %s, want 0:\n%s", events, n, text)
	}
	if err := r.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("superd is gone: %v\n%s", err, r.stderr.String())
	}
}

// makeMemoryCgroup makes a memory cgroup limited to limit bytes (cgroup v2
// if mounted with the memory controller, else v1), removed when the test
// ends, and says which version it is. It skips the test where neither can
// be made.
func makeMemoryCgroup(t *testing.T, limit int64) (dir string, v2 bool) {
	t.Helper()
	procCgroup, err1 := os.ReadFile("/proc/self/cgroup")
	mountinfo, err2 := os.ReadFile("/proc/self/mountinfo")
	if err1 != nil || err2 != nil {
		t.Skip("no /proc/self/cgroup or mountinfo")
	}
	for _, v2 := range []bool{true, false} {
		_, mount, ok := memoryCgroupDir(string(procCgroup), string(mountinfo), v2)
		if !ok {
			continue
		}
		file := "memory.limit_in_bytes"
		if v2 {
			file = "memory.max"
		}
		dir := fmt.Sprintf("%s/superd-test-%d", mount, os.Getpid())
		if err := os.Mkdir(dir, 0o755); err != nil {
			continue
		}
		if err := os.WriteFile(dir+"/"+file, []byte(strconv.FormatInt(limit, 10)), 0); err != nil {
			os.Remove(dir)
			continue
		}
		// No swap either, or a superd over the limit would swap, not be
		// killed, and the test could not fail.
		swapFile, swapValue := "memory.memsw.limit_in_bytes", strconv.FormatInt(limit, 10)
		if v2 {
			swapFile, swapValue = "memory.swap.max", "0"
		}
		if err := os.WriteFile(dir+"/"+swapFile, []byte(swapValue), 0); err != nil && swapOn() {
			os.Remove(dir)
			t.Skipf("swap is on and %s cannot be set: %v", swapFile, err)
		}
		// Registered before the processes in it start, so it runs after
		// their cleanups have ended them: a cgroup goes once empty.
		t.Cleanup(func() {
			if !waitUntil(10*time.Second, func() bool { return os.Remove(dir) == nil }) {
				t.Errorf("cgroup %s not removed", dir)
			}
		})
		return dir, v2
	}
	t.Skip("cannot make a memory cgroup")
	return "", false
}

// swapOn says whether the host has swap (/proc/swaps lists a device).
func swapOn() bool {
	b, err := os.ReadFile("/proc/swaps")
	return err != nil || strings.Count(strings.TrimSpace(string(b)), "\n") > 0
}

// fieldValue is the value of key in "key value" lines.
func fieldValue(text, key string) string {
	for line := range strings.SplitSeq(text, "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
