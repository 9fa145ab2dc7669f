package server

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/superd/superd/internal/testport"
	"github.com/superd/superd/pkg/config"
	"github.com/superd/superd/pkg/metrics"
)

// fdKinds summarises a /proc/self/fd listing as "socket", "pipe", "null"…
// per fd, so tests can say exactly which fds a child has.
func fdKinds(fds map[int]string) map[int]string {
	out := map[int]string{}
	for fd, target := range fds {
		switch {
		case strings.HasPrefix(target, "socket:"):
			out[fd] = "socket"
		case strings.HasPrefix(target, "pipe:"):
			out[fd] = "pipe"
		case target == "/dev/null":
			out[fd] = "null"
		default:
			out[fd] = target
		}
	}
	return out
}

func sameMap(a, b map[int]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestAcceptStdioGivesConnectionEnvAndNothingElse(t *testing.T) {
	port := freePort(t)
	h := start(t, `
services:
  rep:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    exec: ["{{BIN}}", "superd-helper", "report", "extra-arg"]
    argv0: my-report
    env: {GREETING: hello}
`)
	addr := "127.0.0.1:" + itoa(port)
	r, local := dialReport(t, "tcp", addr)
	lport := strconv.Itoa(local.(*net.TCPAddr).Port)

	want := map[string]string{
		"PATH":           strings.TrimPrefix(config.DefaultPath, "PATH="),
		"GREETING":       "hello",
		"SUPERD_SERVICE": "rep",
		"REMOTE_ADDR":    "127.0.0.1",
		"REMOTE_PORT":    lport,
		"PROTO":          "TCP",
		"TCPREMOTEIP":    "127.0.0.1",
		"TCPREMOTEPORT":  lport,
		"TCPLOCALIP":     "127.0.0.1",
		"TCPLOCALPORT":   itoa(port),
	}
	if len(r.Env) != len(want) {
		t.Errorf("child env has %d variables, want exactly %d: %v", len(r.Env), len(want), r.Env)
	}
	for k, v := range want {
		if r.Env[k] != v {
			t.Errorf("env %s = %q, want %q", k, r.Env[k], v)
		}
	}
	if got := strings.Join(r.Args, " "); got != "my-report superd-helper report extra-arg" {
		t.Errorf("argv = %q", got)
	}
	// fd 0 and 1 are the connection, fd 2 the stderr pipe, and nothing
	// of superd's (or the test's) leaked.
	if got, want := fdKinds(r.FDs), map[int]string{0: "socket", 1: "socket", 2: "pipe"}; !sameMap(got, want) {
		t.Errorf("child fds = %v, want %v", r.FDs, want)
	}
	if r.FDs[0] != r.FDs[1] {
		t.Errorf("fd 0 (%s) and fd 1 (%s) are not the same connection", r.FDs[0], r.FDs[1])
	}
	if r.NonBlock[0] {
		t.Error("the connection reached the child in non-blocking mode")
	}
	if r.Cwd != "/" {
		t.Errorf("cwd = %q, want /", r.Cwd)
	}
	h.waitExits("rep", 1)
	if got := h.activations("rep"); got != 1 {
		t.Errorf("activations = %v, want 1", got)
	}
	if got := h.accepted("rep"); got != 1 {
		t.Errorf("connections accepted = %v, want 1", got)
	}
	if got := h.exits("rep", metrics.OutcomeSuccess); got != 1 {
		t.Errorf("successful exits = %v, want 1", got)
	}
	waitFor(t, "instances back to 0", func() bool { return h.instances("rep") == 0 })
	// One activation line and one exit line, with the fields SPEC §3 names.
	act := h.logs.FilterMessage("activation").AllUntimed()
	if len(act) != 1 || act[0].ContextMap()["service"] != "rep" || act[0].ContextMap()["remote"] != "127.0.0.1:"+lport || act[0].ContextMap()["pid"] != int64(r.PID) {
		t.Errorf("activation log lines = %+v", act)
	}
	ex := h.logs.FilterMessage("exit").AllUntimed()
	if len(ex) != 1 || ex[0].ContextMap()["exit"] != int64(0) || ex[0].ContextMap()["pid"] != int64(r.PID) {
		t.Errorf("exit log lines = %+v", ex)
	}
}

// formatRemote cuts five strings out of one: each must read exactly as
// formatted on its own, whatever the address family, zone or port.
func TestFormatRemoteMatchesSeparateFormatting(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		port int
	}{
		{"127.0.0.1", 1},
		{"10.200.30.4", 65535},
		{"::1", 40000},
		{"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 65535},
		{"fe80::1%averyverylongnam", 22}, // a zone as long as an interface name gets
	} {
		ip := netip.MustParseAddr(tc.ip)
		remote, env := formatRemote(ip, tc.port)
		port := strconv.Itoa(tc.port)
		want := [4]string{"REMOTE_ADDR=" + ip.String(), "REMOTE_PORT=" + port, "TCPREMOTEIP=" + ip.String(), "TCPREMOTEPORT=" + port}
		if env != want {
			t.Errorf("%s port %d: env %q, want %q", tc.ip, tc.port, env, want)
		}
		if w := netip.AddrPortFrom(ip, uint16(tc.port)).String(); remote != w {
			t.Errorf("%s port %d: remote %q, want %q", tc.ip, tc.port, remote, w)
		}
	}
}

func TestDualStackWildcardServesBothFamiliesWithPlainAddresses(t *testing.T) {
	port := freePort(t)
	start(t, `
services:
  rep:
    listen: tcp://:`+itoa(port)+`
    exec: ["{{BIN}}", "superd-helper", "report"]
`)
	clients := []struct{ addr, remote string }{{"127.0.0.1:" + itoa(port), "127.0.0.1"}}
	if testport.IPv6Loopback() {
		clients = append(clients, struct{ addr, remote string }{"[::1]:" + itoa(port), "::1"})
	}
	for _, tc := range clients {
		r, _ := dialReport(t, "tcp", tc.addr)
		if r.Env["REMOTE_ADDR"] != tc.remote || r.Env["TCPLOCALIP"] != tc.remote {
			t.Errorf("via %s: REMOTE_ADDR=%q TCPLOCALIP=%q, want %q", tc.addr, r.Env["REMOTE_ADDR"], r.Env["TCPLOCALIP"], tc.remote)
		}
	}
}

func TestAcceptListenFDsPutsConnectionOnFD3(t *testing.T) {
	port := freePort(t)
	start(t, `
services:
  rep:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    pass: listen_fds
    exec: ["{{BIN}}", "superd-helper", "report-fd3"]
`)
	r, _ := dialReport(t, "tcp", "127.0.0.1:"+itoa(port))
	if got, want := fdKinds(r.FDs), map[int]string{0: "null", 1: "null", 2: "pipe", 3: "socket"}; !sameMap(got, want) {
		t.Errorf("child fds = %v, want %v", r.FDs, want)
	}
	if r.Env["LISTEN_FDS"] != "1" || r.Env["LISTEN_FDNAMES"] != "connection" || r.Env["LISTEN_PID"] != itoa(r.PID) {
		t.Errorf("LISTEN_FDS=%q LISTEN_FDNAMES=%q LISTEN_PID=%q (pid %d)", r.Env["LISTEN_FDS"], r.Env["LISTEN_FDNAMES"], r.Env["LISTEN_PID"], r.PID)
	}
	if r.NonBlock[3] {
		t.Error("fd 3 reached the child non-blocking")
	}
	if r.Env["REMOTE_ADDR"] != "127.0.0.1" {
		t.Errorf("REMOTE_ADDR = %q", r.Env["REMOTE_ADDR"])
	}
}

func TestWaitListenFDsHandsEverySocketInOrderAndRearms(t *testing.T) {
	port := freePort(t)
	sock := filepath.Join(t.TempDir(), "svc.sock")
	h := start(t, `
services:
  multi:
    listen:
      - tcp://127.0.0.1:`+itoa(port)+`
      - unix://`+sock+`
    mode: wait
    pass: listen_fds
    socket: {fd_name: web}
    exec: ["{{BIN}}", "superd-helper", "accept-report"]
`)
	// A connection on the second socket reaches the child on fd 4.
	r, _ := dialReport(t, "unix", sock)
	if r.ServedOnFD != 4 {
		t.Errorf("connection to the second socket served on fd %d, want 4", r.ServedOnFD)
	}
	if r.Env["LISTEN_FDS"] != "2" || r.Env["LISTEN_PID"] != itoa(r.PID) || r.Env["LISTEN_FDNAMES"] != "web:web" {
		t.Errorf("LISTEN_FDS=%q LISTEN_PID=%q (pid %d) LISTEN_FDNAMES=%q", r.Env["LISTEN_FDS"], r.Env["LISTEN_PID"], r.PID, r.Env["LISTEN_FDNAMES"])
	}
	if got, want := fdKinds(r.FDs), map[int]string{0: "null", 1: "null", 2: "pipe", 3: "socket", 4: "socket"}; !sameMap(got, want) {
		t.Errorf("child fds = %v, want %v", r.FDs, want)
	}
	if r.NonBlock[3] || r.NonBlock[4] {
		t.Errorf("listening sockets reached the child non-blocking: %v", r.NonBlock)
	}
	h.waitExits("multi", 1)

	// Re-armed: the next connection, on the first socket, starts a new child.
	r2, _ := dialReport(t, "tcp", "127.0.0.1:"+itoa(port))
	if r2.ServedOnFD != 3 || r2.PID == r.PID {
		t.Errorf("second activation: fd %d pid %d (first pid %d)", r2.ServedOnFD, r2.PID, r.PID)
	}
	h.waitExits("multi", 2)
	// superd's copies are non-blocking again once the child is gone.
	var nonblock []bool
	if err := h.srv.call(func() {
		for _, svc := range h.srv.services {
			for _, sk := range svc.socks {
				fl, _ := unix.FcntlInt(uintptr(sk.fd), unix.F_GETFL, 0)
				nonblock = append(nonblock, fl&unix.O_NONBLOCK != 0)
			}
		}
	}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if len(nonblock) != 2 || !nonblock[0] || !nonblock[1] {
		t.Errorf("after the child exited, O_NONBLOCK on superd's sockets = %v, want [true true]", nonblock)
	}
}

func TestWaitStdioStreamChildAcceptsOnStdin(t *testing.T) {
	port := freePort(t)
	start(t, `
services:
  one:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    mode: wait
    exec: ["{{BIN}}", "superd-helper", "stdio-accept"]
`)
	r, _ := dialReport(t, "tcp", "127.0.0.1:"+itoa(port))
	if got, want := fdKinds(r.FDs), map[int]string{0: "socket", 1: "socket", 2: "pipe"}; !sameMap(got, want) {
		t.Errorf("child fds = %v, want %v", r.FDs, want)
	}
	if _, ok := r.Env["LISTEN_FDS"]; ok {
		t.Error("stdio child got LISTEN_FDS")
	}
}

func TestUDPWaitModeAnswersAndRearms(t *testing.T) {
	port := freePort(t)
	h := start(t, `
services:
  dgram:
    listen: udp://127.0.0.1:`+itoa(port)+`
    exec: ["{{BIN}}", "superd-helper", "udp-reply"]
`)
	ask := udpAsker(t, "127.0.0.1:"+itoa(port))
	p1 := ask("first")
	h.waitExits("dgram", 1)
	p2 := ask("second")
	if p1 == p2 {
		t.Errorf("both datagrams answered by pid %s; want a new child after re-arm", p1)
	}
	h.waitExits("dgram", 2)
	if got := h.activations("dgram"); got != 2 {
		t.Errorf("activations = %v, want 2", got)
	}
}

func TestStderrLinesAreLoggedWithServiceAndPid(t *testing.T) {
	port := freePort(t)
	h := start(t, `
services:
  noisy:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    exec: ["{{BIN}}", "superd-helper", "stderr", "first line", "second line"]
`)
	if got := dialRead(t, "tcp", "127.0.0.1:"+itoa(port)); got != "done\n" {
		t.Errorf("stdout = %q", got)
	}
	h.waitExits("noisy", 1)
	waitFor(t, "two stderr lines logged", func() bool { return h.logs.FilterMessage("stderr").Len() == 2 })
	lines := h.logs.FilterMessage("stderr").AllUntimed()
	act := h.logs.FilterMessage("activation").AllUntimed()[0].ContextMap()
	for i, want := range []string{"first line", "second line"} {
		cm := lines[i].ContextMap()
		if cm["line"] != want || cm["service"] != "noisy" || cm["pid"] != act["pid"] {
			t.Errorf("stderr log %d = %v, want line %q of service noisy pid %v", i, cm, want, act["pid"])
		}
	}
	if got := h.exits("noisy", metrics.OutcomeFailure); got != 1 {
		t.Errorf("failure exits = %v, want 1 (the helper exits 3)", got)
	}
	ex := h.logs.FilterMessage("exit").AllUntimed()
	if len(ex) != 1 || ex[0].ContextMap()["exit"] != int64(3) {
		t.Errorf("exit lines = %v, want one with exit 3", ex)
	}
}

func TestStderrSocketAndDiscard(t *testing.T) {
	p1, p2 := freePort(t), freePort(t)
	h := start(t, `
services:
  tosock:
    listen: tcp://127.0.0.1:`+itoa(p1)+`
    stderr: socket
    exec: ["{{BIN}}", "superd-helper", "stderr", "oops"]
  quiet:
    listen: tcp://127.0.0.1:`+itoa(p2)+`
    stderr: discard
    exec: ["{{BIN}}", "superd-helper", "report"]
`)
	got := dialRead(t, "tcp", "127.0.0.1:"+itoa(p1))
	if !strings.Contains(got, "oops\n") || !strings.Contains(got, "done\n") {
		t.Errorf("stderr: socket: client read %q, want both stderr and stdout", got)
	}
	r, _ := dialReport(t, "tcp", "127.0.0.1:"+itoa(p2))
	if r.FDs[2] != "/dev/null" {
		t.Errorf("stderr: discard: fd 2 = %q, want /dev/null", r.FDs[2])
	}
	h.waitExits("tosock", 1)
	if n := h.logs.FilterMessage("stderr").Len(); n != 0 {
		t.Errorf("%d stderr lines logged, want none", n)
	}
}

func TestProcessAttributesAreInForceAtExec(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	port := freePort(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	start(t, `
services:
  attrs:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    exec: ["{{BIN}}", "superd-helper", "report"]
    user: nobody
    groups: []
    working_directory: `+dir+`
    umask: "027"
    nice: 5
    rlimits: {nofile: 100, core: 0}
`)
	r, _ := dialReport(t, "tcp", "127.0.0.1:"+itoa(port))
	if r.UID != 65534 {
		t.Errorf("uid = %d, want 65534 (nobody)", r.UID)
	}
	if r.GID != 65534 {
		t.Errorf("gid = %d, want 65534 (nobody's primary group)", r.GID)
	}
	if len(r.Groups) != 0 {
		t.Errorf("supplementary groups = %v, want none", r.Groups)
	}
	if r.Umask != "0027" {
		t.Errorf("umask = %s, want 0027", r.Umask)
	}
	if r.Nice != 5 {
		t.Errorf("nice = %d, want 5", r.Nice)
	}
	if r.NoFile != [2]uint64{100, 100} || r.Core != [2]uint64{0, 0} {
		t.Errorf("rlimits nofile=%v core=%v, want [100 100] and [0 0]", r.NoFile, r.Core)
	}
	if r.Cwd != dir {
		t.Errorf("cwd = %q, want %q", r.Cwd, dir)
	}
	// The launcher adds no fd and no variable of its own.
	if got, want := fdKinds(r.FDs), map[int]string{0: "socket", 1: "socket", 2: "pipe"}; !sameMap(got, want) {
		t.Errorf("child fds = %v, want %v", r.FDs, want)
	}
	var names []string
	for k := range r.Env {
		names = append(names, k)
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "PATH PROTO REMOTE_ADDR REMOTE_PORT SUPERD_SERVICE TCPLOCALIP TCPLOCALPORT TCPREMOTEIP TCPREMOTEPORT" {
		t.Errorf("env names = %v", names)
	}
}

func TestMaxInstancesClosesTheExtraConnection(t *testing.T) {
	port := freePort(t)
	h := start(t, `
services:
  one:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    max_instances: 1
    exec: ["{{BIN}}", "superd-helper", "hold"]
`)
	addr := "127.0.0.1:" + itoa(port)
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	first.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := bufio.NewReader(first).ReadString('\n'); err != nil {
		t.Fatalf("first client got no pid line: %v", err)
	}
	// The second is closed at once: it reads EOF, no child starts.
	if got := dialRead(t, "tcp", addr); got != "" {
		t.Errorf("second client read %q, want EOF", got)
	}
	if got := h.rejected("one", metrics.ReasonMaxInstances); got != 1 {
		t.Errorf("rejected{max_instances} = %v, want 1", got)
	}
	if got := h.activations("one"); got != 1 {
		t.Errorf("activations = %v, want 1", got)
	}
}

func TestShutdownSignalsChildrenThenKillsStragglers(t *testing.T) {
	p1, p2 := freePort(t), freePort(t)
	h := start(t, `
services:
  polite:
    listen: tcp://127.0.0.1:`+itoa(p1)+`
    exec: ["{{BIN}}", "superd-helper", "hold"]
  stubborn:
    listen: tcp://127.0.0.1:`+itoa(p2)+`
    stop_timeout: 2s
    exec: ["{{BIN}}", "superd-helper", "ignore-term"]
`)
	conns := map[string]*bufio.Reader{}
	for name, port := range map[string]int{"polite": p1, "stubborn": p2} {
		c, err := net.Dial("tcp", "127.0.0.1:"+itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		rd := bufio.NewReader(c)
		if _, err := rd.ReadString('\n'); err != nil {
			t.Fatalf("%s: no pid line: %v", name, err)
		}
		conns[name] = rd
	}
	begin := time.Now()
	h.stop()
	if line, _ := conns["polite"].ReadString('\n'); line != "term\n" {
		t.Errorf("polite child said %q after shutdown, want \"term\"", line)
	}
	if line, _ := conns["stubborn"].ReadString('\n'); line != "ignored\n" {
		t.Errorf("stubborn child said %q, want \"ignored\"", line)
	}
	if took := time.Since(begin); took < 2*time.Second {
		t.Errorf("shutdown took %v, before the stubborn child's stop_timeout", took)
	}
	if got := h.exits("polite", metrics.OutcomeStopped) + h.exits("stubborn", metrics.OutcomeStopped); got != 2 {
		t.Errorf("stopped exits = %v, want 2", got)
	}
	kills := h.logs.FilterMessage("exit").FilterField(zap.String("signal", "SIGKILL")).Len()
	if kills != 1 {
		t.Errorf("%d children exited by SIGKILL, want 1 (the stubborn one)", kills)
	}
	// Listening sockets are gone.
	if _, err := net.Dial("tcp", "127.0.0.1:"+itoa(p1)); err == nil {
		t.Error("port still accepts connections after shutdown")
	}
}

func TestAServiceThatCannotBindDoesNotStopTheOthers(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := freePort(t)
	h := start(t, `
services:
  broken:
    listen: tcp://`+busy.Addr().String()+`
    exec: ["{{BIN}}", "superd-helper", "report"]
  fine:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    exec: ["{{BIN}}", "superd-helper", "report"]
`)
	if r, _ := dialReport(t, "tcp", "127.0.0.1:"+itoa(port)); r.Env["SUPERD_SERVICE"] != "fine" {
		t.Errorf("fine service answered as %q", r.Env["SUPERD_SERVICE"])
	}
	st, err := h.srv.Status(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, s := range st {
		states[s.Name] = s.State
	}
	if states["broken"] != "failed" || states["fine"] != "listening" {
		t.Errorf("states = %v", states)
	}
	if n := h.logs.FilterMessage("service failed: cannot listen").Len(); n != 1 {
		t.Errorf("%d bind failure lines logged, want 1", n)
	}
}

// A program that cannot be started is a spawn error, not an activation,
// whether superd forks it directly or through the launcher (a umask, a
// nice value, rlimits or LISTEN_PID), where the failure comes after the
// fork: the launcher reports it on its status pipe.
func TestSpawnFailureClosesConnectionAndIsCounted(t *testing.T) {
	for _, tc := range []struct{ name, extra, why string }{
		{"direct", "", "no such file or directory"},
		{"through the launcher", "    nice: 1\n", "exec /nonexistent/program: no such file or directory"},
		{"launcher failing before exec", "    rlimits: {nproc: 10, nofile: 99999999999}\n", "setrlimit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			h := start(t, `
services:
  missing:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    exec: ["/nonexistent/program"]
`+tc.extra)
			if err := h.srv.call(func() {
				if launched := h.srv.services[0].spawnSpec().UsesLauncher(); launched != (tc.extra != "") {
					t.Errorf("starts through the launcher: %v", launched)
				}
			}, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if got := dialRead(t, "tcp", "127.0.0.1:"+itoa(port)); got != "" {
				t.Errorf("client read %q, want EOF", got)
			}
			waitFor(t, "spawn_error counted", func() bool { return h.rejected("missing", metrics.ReasonSpawnError) == 1 })
			if got := h.activations("missing"); got != 0 {
				t.Errorf("activations = %v, want 0", got)
			}
			failed := h.logs.FilterMessage("spawn failed").AllUntimed()
			if len(failed) != 1 || !strings.Contains(failed[0].ContextMap()["error"].(string), tc.why) {
				t.Errorf("spawn failed lines %v, want one saying %q", failed, tc.why)
			}
			// Nothing of the launcher is left: no child, no zombie.
			if err := h.srv.call(func() {
				if len(h.srv.children) != 0 || h.srv.services[0].active != 0 {
					t.Errorf("%d children, %d active after a failed spawn", len(h.srv.children), h.srv.services[0].active)
				}
			}, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if z := zombies(t); len(z) != 0 {
				t.Errorf("unreaped children left: %v", z)
			}
		})
	}
}

func TestWaitModeChildFailingFastIsBackedOff(t *testing.T) {
	port := freePort(t)
	h := start(t, `
services:
  crashy:
    listen: udp://127.0.0.1:`+itoa(port)+`
    exec: ["{{BIN}}", "superd-helper", "fail"]
`)
	c, err := net.Dial("udp", "127.0.0.1:"+itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The datagram is never read, so the socket stays readable: only the
	// back-off keeps superd from restarting the child in a tight loop.
	c.Write([]byte("x"))
	h.waitExits("crashy", 1)
	waitFor(t, "back-off", func() bool { return h.logs.FilterMessage("child failed quickly; backing off").Len() == 1 })
	st, _ := h.srv.Status(5 * time.Second)
	if st[0].State != "paused" {
		t.Errorf("state during back-off = %q, want paused", st[0].State)
	}
	if got := h.activations("crashy"); got != 1 {
		t.Errorf("activations during the 1s back-off = %v, want 1", got)
	}
	// After the back-off the socket is watched again and the child retried.
	h.waitExits("crashy", 2)
	waitFor(t, "second back-off, doubled", func() bool {
		for _, e := range h.logs.FilterMessage("child failed quickly; backing off").AllUntimed() {
			if e.ContextMap()["pause"] == 2*time.Second {
				return true
			}
		}
		return false
	})
}

// A wait-mode program that exits 0 at once without taking its socket
// leaves the client waiting and the socket readable: without a limit,
// superd would start it again and again. Datagram sockets are judged from
// the first child (the datagram is peeked), stream sockets once quick
// exits have kept them readable for suspicionLag (superd then names the
// waiting connections).
func TestWaitModeChildLeavingItsClientWaitingIsBackedOff(t *testing.T) {
	if unsafe.Sizeof(service{}) > 144 {
		// The streak's counter lives in the padding after active.
		t.Errorf("service is %d bytes, more than 144: a 10,000-service superd holds 10,000", unsafe.Sizeof(service{}))
	}
	for _, tc := range []struct {
		network string
		judged  int // exits before the first back-off; 0: at least unservedLimit
	}{
		{"udp", unservedLimit},
		{"unixgram", unservedLimit},
		// Stream sockets are named only once quick exits have kept the
		// socket readable for suspicionLag: however many children that
		// second took, then unservedLimit more.
		{"tcp", 0},
		{"unix", 0},
	} {
		t.Run(tc.network, func(t *testing.T) {
			if tc.judged == 0 {
				needDiag(t)
				saved := suspicionLag
				suspicionLag = 50 * time.Millisecond
				t.Cleanup(func() { suspicionLag = saved })
			}
			addr, listen := "", ""
			switch tc.network {
			case "udp", "tcp":
				addr = "127.0.0.1:" + itoa(freePort(t))
				listen = tc.network + "://" + addr
			default:
				addr = filepath.Join(t.TempDir(), "lazy.sock")
				listen = tc.network + "://" + addr
			}
			h := start(t, `
services:
  lazy:
    listen: `+listen+`
    mode: wait
    exec: [/bin/true]
`)
			c, err := net.Dial(tc.network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("x"))
			const why = "children keep exiting quickly without taking what waits on the socket; backing off"
			// Judged from the log, which the loop writes in order: a
			// snapshot during the 1 s back-off could come too late on a
			// loaded machine.
			var backoffs []time.Duration
			var exitsBefore []int
			waitFor(t, "two back-offs", func() bool {
				backoffs, exitsBefore = backoffs[:0], exitsBefore[:0]
				exits := 0
				for _, e := range h.logs.AllUntimed() {
					switch e.Message {
					case "exit":
						exits++
					case why:
						backoffs = append(backoffs, e.ContextMap()["pause"].(time.Duration))
						exitsBefore = append(exitsBefore, exits)
					}
				}
				return len(backoffs) >= 2
			})
			// Then 1 s; still nobody takes the client, so the next
			// child backs off at once, for twice as long.
			if backoffs[0] != time.Second || backoffs[1] != 2*time.Second {
				t.Errorf("back-offs %v, want 1s then 2s", backoffs)
			}
			switch {
			case tc.judged != 0 && exitsBefore[0] != tc.judged:
				t.Errorf("children before the first back-off: %d, want %d", exitsBefore[0], tc.judged)
			case tc.judged == 0 && exitsBefore[0] < unservedLimit+1:
				t.Errorf("children before the first back-off: %d, want at least %d", exitsBefore[0], unservedLimit+1)
			case exitsBefore[1] != exitsBefore[0]+1:
				t.Errorf("children before each back-off: %v, want one more before the second", exitsBefore)
			}
			if got := h.exits("lazy", metrics.OutcomeFailure); got != 0 {
				t.Errorf("failed exits = %v, want none: /bin/true succeeds", got)
			}
		})
	}
}

// A wait-mode program that serves one datagram, or accepts one connection,
// and exits is restarted for each of many clients waiting back to back,
// without a back-off: each took its client. (make bench's TCP wait test
// found a version that judged stream sockets by their queue's length.)
func TestWaitModeOneShotChildrenAreNotBackedOff(t *testing.T) {
	t.Run("udp", func(t *testing.T) {
		port := freePort(t)
		h := start(t, `
services:
  oneshot:
    listen: udp://127.0.0.1:`+itoa(port)+`
    exec: ["{{BIN}}", "superd-helper", "udp-reply"]
`)
		c, err := net.Dial("udp", "127.0.0.1:"+itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// More datagrams queued at once than the limit, so most exits
		// leave the next one waiting; all from one sender, each its own.
		const n = 3 * unservedLimit
		for i := 0; i < n; i++ {
			if _, err := c.Write([]byte(itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 64)
		for i := 0; i < n; i++ {
			if _, err := c.Read(buf); err != nil {
				t.Fatalf("reply %d of %d: %v", i+1, n, err)
			}
		}
		if got := h.logs.FilterMessageSnippet("backing off").Len(); got != 0 {
			t.Errorf("%d back-offs for children that each served a datagram", got)
		}
	})
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			needDiag(t)
			// superd names the waiting connections once quick exits have
			// kept the socket readable this long (1 s in superd).
			saved := suspicionLag
			suspicionLag = 50 * time.Millisecond
			t.Cleanup(func() { suspicionLag = saved })
			addr := "127.0.0.1:" + itoa(freePort(t))
			if network == "unix" {
				addr = filepath.Join(t.TempDir(), "oneshot.sock")
			}
			h := start(t, `
services:
  oneshot:
    listen: `+network+`://`+addr+`
    mode: wait
    exec: ["{{BIN}}", "superd-helper", "stdio-accept"]
`)
			// Four clients at once, each connecting again as soon as
			// its answer is in, for well over the lag: a child finds
			// several waiting and takes one, and superd names them.
			queries := diagQueries.Load()
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			deadline := time.Now().Add(20 * suspicionLag)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(deadline) {
						c, err := net.DialTimeout(network, addr, 10*time.Second)
						if err == nil {
							c.SetDeadline(time.Now().Add(10 * time.Second))
							var b []byte
							b, err = io.ReadAll(c)
							c.Close()
							if err == nil && len(b) == 0 {
								err = io.ErrUnexpectedEOF
							}
						}
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("a client: %v", err)
			}
			if got := h.logs.FilterMessageSnippet("backing off").Len(); got != 0 {
				t.Errorf("%d back-offs for children that each accepted a connection", got)
			}
			if diagQueries.Load() == queries {
				t.Error("superd never named the waiting connections: the test did not reach what it tests")
			}
		})
	}
}

// TestWaitModeIgnoresAnEmptyReadiness delivers a readiness to a wait-mode
// socket with nothing waiting on it, as an event kept alive by a forked
// copy of a closed fd can (Server.closeWatched): no child may start. A
// real client afterwards is served.
func TestWaitModeIgnoresAnEmptyReadiness(t *testing.T) {
	port := freePort(t)
	h := start(t, `
services:
  dgram:
    listen: udp://127.0.0.1:`+itoa(port)+`
    exec: ["{{BIN}}", "superd-helper", "udp-reply"]
`)
	if err := h.srv.call(func() {
		for _, w := range h.srv.watched {
			if sk, ok := w.(*socket); ok {
				sk.ready(h.srv, unix.EPOLLIN)
			}
		}
	}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := h.activations("dgram"); got != 0 {
		t.Fatalf("an empty readiness started %v children", got)
	}
	udpAsker(t, "127.0.0.1:"+itoa(port))("ping") // answered
	if got := h.activations("dgram"); got != 1 {
		t.Errorf("activations = %v, want 1", got)
	}
}

func TestWatchersByFD(t *testing.T) {
	var ws watchers
	a, b := &socket{fd: 3}, &socket{fd: 700}
	ws.set(3, a)
	ws.set(700, b) // grows past the end
	ws.set(900, nil)
	ws.set(-1, a)
	if ws.get(3) != a || ws.get(700) != b {
		t.Errorf("get(3), get(700) = %v, %v", ws.get(3), ws.get(700))
	}
	if len(ws) != 701 {
		t.Errorf("len %d after setting fd 700 (removing fd 900 must not grow it)", len(ws))
	}
	for _, fd := range []int{-1, 0, 4, 900, 1 << 20} {
		if w := ws.get(fd); w != nil {
			t.Errorf("get(%d) = %v, want none", fd, w)
		}
	}
	ws.set(3, nil)
	if ws.get(3) != nil {
		t.Error("fd 3 still has a watcher after set(3, nil)")
	}
}

// zombies are the children of this process, of any of its threads, that
// exited and were not waited for.
func zombies(t *testing.T) []string {
	t.Helper()
	lists, _ := filepath.Glob("/proc/self/task/*/children")
	var out []string
	for _, l := range lists {
		b, err := os.ReadFile(l)
		if err != nil {
			continue // the thread ended
		}
		for _, pid := range strings.Fields(string(b)) {
			stat, err := os.ReadFile("/proc/" + pid + "/stat")
			// The state follows the command name in parentheses.
			if i := strings.LastIndexByte(string(stat), ')'); err == nil && i > 0 && strings.HasPrefix(string(stat[i:]), ") Z") {
				out = append(out, pid)
			}
		}
	}
	return out
}
