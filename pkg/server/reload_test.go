package server

import (
	"bufio"
	"net"
	"strings"

	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/superd/superd/pkg/config"
	"github.com/superd/superd/pkg/metrics"
)

// reloadTo parses yamlText and reloads h's server with it.
func (h *harness) reloadTo(yamlText string) {
	h.t.Helper()
	yamlText = strings.ReplaceAll(yamlText, "{{BIN}}", helperBinary(h.t))
	cfg, err := config.Parse("reload.yaml", []byte(yamlText), config.Options{})
	if err != nil {
		h.t.Fatalf("config: %v", err)
	}
	if err := h.srv.Reload(cfg); err != nil {
		h.t.Fatalf("reload: %v", err)
	}
}

// blockLoop parks the event loop until the returned func is called, as a
// slow reload would.
func (h *harness) blockLoop() (release func()) {
	parked, resume := make(chan struct{}), make(chan struct{})
	h.srv.post(func() { close(parked); <-resume })
	<-parked
	return func() { close(resume) }
}

func TestReloadKeepsUnchangedSocketsWithTheirBacklog(t *testing.T) {
	p1, p2 := freePort(t), freePort(t)
	one := `
services:
  keep:
    listen: tcp://127.0.0.1:` + itoa(p1) + `
    exec: ["{{BIN}}", "superd-helper", "echo"]
`
	h := start(t, one)
	// While the loop is busy, clients connect: the kernel queues them in
	// the listening socket's backlog.
	release := h.blockLoop()
	const n = 20
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", "127.0.0.1:"+itoa(p1))
		if err != nil {
			release()
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	// The reload (adding a service) is queued behind the busy loop, so it
	// runs before any of the waiting connections is accepted.
	reloaded := make(chan struct{})
	go func() {
		defer close(reloaded)
		h.reloadTo(one + `
  added:
    listen: tcp://127.0.0.1:` + itoa(p2) + `
    exec: ["{{BIN}}", "superd-helper", "echo"]
`)
	}()
	waitFor(t, "reload queued", func() bool {
		h.srv.mu.Lock()
		defer h.srv.mu.Unlock()
		return len(h.srv.queue) > 0
	})
	release()
	<-reloaded
	for i, c := range conns {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		msg := "hello " + itoa(i) + "\n"
		c.Write([]byte(msg))
		got, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || got != msg {
			t.Errorf("backlogged connection %d: %q, %v", i, got, err)
		}
	}
	if got := dialEcho(t, "127.0.0.1:"+itoa(p2), "new\n"); got != "new\n" {
		t.Errorf("added service answered %q", got)
	}
	if n := h.logs.FilterMessage("configuration reloaded").FilterField(zap.Int("sockets_kept", 1)).Len(); n != 1 {
		t.Errorf("reload did not keep the unchanged socket: %v", h.logs.FilterMessage("configuration reloaded").AllUntimed())
	}
}

func TestReloadClosesRemovedAndRebindsChangedSockets(t *testing.T) {
	p1, p2 := freePort(t), freePort(t)
	h := start(t, `
services:
  changes:
    listen: tcp://127.0.0.1:`+itoa(p1)+`
    exec: ["{{BIN}}", "superd-helper", "echo"]
  goes:
    listen: tcp://127.0.0.1:`+itoa(p2)+`
    exec: ["{{BIN}}", "superd-helper", "echo"]
`)
	h.reloadTo(`
services:
  changes:
    listen: tcp://127.0.0.1:` + itoa(p1) + `
    socket: {no_delay: true}
    exec: ["{{BIN}}", "superd-helper", "echo"]
`)
	if got := dialEcho(t, "127.0.0.1:"+itoa(p1), "still here\n"); got != "still here\n" {
		t.Errorf("changed service answered %q", got)
	}
	if c, err := net.Dial("tcp", "127.0.0.1:"+itoa(p2)); err == nil {
		c.Close()
		t.Error("removed service's port still accepts connections")
	}
	st, _ := h.srv.Status(5 * time.Second)
	if len(st) != 1 || st[0].Name != "changes" {
		t.Errorf("services after reload: %+v", st)
	}
}

func TestReloadNeverStopsRunningChildren(t *testing.T) {
	port := freePort(t)
	h := start(t, `
services:
  held:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    exec: ["{{BIN}}", "superd-helper", "hold"]
`)
	c, err := net.Dial("tcp", "127.0.0.1:"+itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	rd := bufio.NewReader(c)
	if _, err := rd.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	// The service goes away; its child does not.
	h.reloadTo("services: {}\n")
	if got := h.exits("held", metrics.OutcomeSignal) + h.exits("held", metrics.OutcomeStopped); got != 0 {
		t.Fatalf("a child was stopped by the reload")
	}
	c.(*net.TCPConn).CloseWrite()
	// The removed service's series go with its last child
	// (TestDisabledAndRemovedServicesInMetrics): the exit line tells.
	// (A filter is a copy of the lines so far: filter again each time.)
	exits := func() *observer.ObservedLogs {
		return h.logs.FilterMessage("exit").FilterField(zap.String("service", "held"))
	}
	waitFor(t, "the child's exit line", func() bool { return exits().Len() > 0 })
	if got := exits().FilterField(zap.String("outcome", metrics.OutcomeSuccess)).Len(); got != 1 {
		t.Errorf("the child did not finish normally after the reload: %v", exits().AllUntimed())
	}
}

func TestReloadedWaitServiceKeepsItsRunningChild(t *testing.T) {
	port := freePort(t)
	cfg := `
services:
  dgram:
    listen: udp://127.0.0.1:` + itoa(port) + `
    exec: ["{{BIN}}", "superd-helper", "udp-reply", "2"]
`
	h := start(t, cfg)
	c, err := net.Dial("udp", "127.0.0.1:"+itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 128)
	ask := func(msg string) string {
		c.Write([]byte(msg))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		pid, _, _ := strings.Cut(string(buf[:n]), ":")
		return pid
	}
	first := ask("a")
	h.reloadTo(cfg) // the child still holds the socket
	if second := ask("b"); second != first {
		t.Errorf("after reload another process (%s, not %s) answered while the first child ran", second, first)
	}
	h.waitExits("dgram", 1)
	if third := ask("c"); third == first {
		t.Errorf("the socket was not re-armed for a new child after the reload")
	}
}

func dialEcho(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(msg))
	got, _ := bufio.NewReader(c).ReadString('\n')
	return got
}

func TestReloadChangingOptionsOfASocketAWaitChildHoldsRebindsWhenItExits(t *testing.T) {
	port := freePort(t)
	cfg := func(backlog int) string {
		return `
services:
  held:
    listen: tcp://127.0.0.1:` + itoa(port) + `
    mode: wait
    socket: {backlog: ` + itoa(backlog) + `}
    exec: ["{{BIN}}", "superd-helper", "accept-hold"]
`
	}
	h := start(t, cfg(64))
	addr := "127.0.0.1:" + itoa(port)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	first, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	// The child holds the old socket, so the new one cannot bind yet.
	h.reloadTo(cfg(128))
	c.Close()
	h.waitExits("held", 1)
	// Once it exits, the service binds its new socket and serves.
	var second string
	waitFor(t, "the service to serve again", func() bool {
		c2, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c2.Close()
		c2.SetDeadline(time.Now().Add(10 * time.Second))
		second, _ = bufio.NewReader(c2).ReadString('\n')
		return second != ""
	})
	if second == first {
		t.Errorf("the same child answered after the reload")
	}
}

func TestAChildFloodingStderrDoesNotStallTheLoop(t *testing.T) {
	p1, p2 := freePort(t), freePort(t)
	h := start(t, `
services:
  noisy:
    listen: tcp://127.0.0.1:`+itoa(p1)+`
    stop_timeout: 1s
    exec: ["/bin/sh", "-c", "exec yes spam >&2"]
  quiet:
    listen: tcp://127.0.0.1:`+itoa(p2)+`
    exec: ["{{BIN}}", "superd-helper", "echo"]
`)
	c, err := net.Dial("tcp", "127.0.0.1:"+itoa(p1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "stderr lines", func() bool { return h.logs.FilterMessage("stderr").Len() > 1000 })
	// While it floods, the loop still answers and other services work.
	// (A stalled loop never answers; the bound is generous because under
	// -race on two busy cores the flood's own logging slows everything.)
	if err := h.srv.Ping(10 * time.Second); err != nil {
		t.Fatalf("loop unresponsive during a stderr flood: %v", err)
	}
	if got := dialEcho(t, "127.0.0.1:"+itoa(p2), "still here\n"); got != "still here\n" {
		t.Errorf("other service answered %q during the flood", got)
	}
}

func TestReloadKeepsARateLimitPauseWhileTheLimitStands(t *testing.T) {
	port := freePort(t)
	addr := "127.0.0.1:" + itoa(port)
	limited := func(max int, pause string) string {
		return `
services:
  limited:
    listen: tcp://` + addr + `
    rate_limit: {max: ` + itoa(max) + `, per: 1m, pause: ` + pause + `}
    exec: ["{{BIN}}", "superd-helper", "stderr"]
`
	}
	h := start(t, limited(2, "1h"))
	state := func() string {
		t.Helper()
		st, err := h.srv.Status(time.Second)
		if err != nil || len(st) != 1 {
			t.Fatalf("status: %v %v", st, err)
		}
		return st[0].State
	}
	// pauseIt uses up the window; the refused connection pauses the
	// service. It returns when that happened.
	pauseIt := func() time.Time {
		t.Helper()
		for i := 0; i < 2; i++ {
			if got := dialRead(t, "tcp", addr); got != "done\n" {
				t.Fatalf("activation %d: %q", i, got)
			}
		}
		at := time.Now()
		if got := dialRead(t, "tcp", addr); got != "" {
			t.Fatalf("third activation answered %q, want a refusal", got)
		}
		if got := state(); got != "paused" {
			t.Fatalf("state = %s, want paused", got)
		}
		return at
	}
	pauseIt()
	// The same limit: the hour's pause goes on.
	h.reloadTo(limited(2, "1h"))
	if got := state(); got != "paused" {
		t.Errorf("state after a reload with the same rate_limit = %s, want paused", got)
	}
	if got := h.up("limited"); got != 0 {
		t.Errorf("superd_service_up after the reload = %v, want 0", got)
	}
	// A new limit: the pause ends, and the window starts afresh.
	h.reloadTo(limited(2, "700ms"))
	if got := state(); got != "listening" {
		t.Errorf("state after a reload with a new rate_limit = %s, want listening", got)
	}

	// A pause carried over ends when it would have: a client that
	// connects after the reload waits in the backlog until then.
	begin := pauseIt()
	h.reloadTo(limited(2, "700ms"))
	got := dialRead(t, "tcp", addr)
	waited := time.Since(begin)
	if got != "done\n" {
		t.Errorf("connection made during the carried pause got %q", got)
	}
	if waited < 600*time.Millisecond {
		t.Errorf("served %v after the pause began, before its 700ms ended", waited)
	}
}

// A service that is down on purpose — disabled: true, or removed by a
// reload while its children finish — says so in superd_service_disabled,
// which alerts on superd_service_up leave out. A removed service's series
// go once its last child ends, unless a reload configured the name again.
func TestDisabledAndRemovedServicesInMetrics(t *testing.T) {
	p1, p2 := freePort(t), freePort(t)
	svc := func(name string, port int, disabled bool) string {
		s := "  " + name + ":\n    listen: tcp://127.0.0.1:" + itoa(port) + "\n    exec: [\"{{BIN}}\", \"superd-helper\", \"hold\"]\n"
		if disabled {
			s += "    disabled: true\n"
		}
		return s
	}
	h := start(t, "services:\n"+svc("off", p1, true)+svc("held", p2, false))
	// check says what a scrape shows of name: up's value, and whether
	// disabled is exposed (at 1) or not; exposed false for up means the
	// service has no series at all.
	check := func(step, name string, exposed bool, up float64, disabled bool) {
		t.Helper()
		labels := map[string]string{"service": name}
		u, ok := h.m.Value("superd_service_up", labels)
		if ok != exposed || u != up {
			t.Errorf("%s: superd_service_up{service=%q} = %v, exposed %v; want %v, %v", step, name, u, ok, up, exposed)
		}
		d, ok := h.m.Value("superd_service_disabled", labels)
		if ok != disabled || (ok && d != 1) {
			t.Errorf("%s: superd_service_disabled{service=%q} = %v, exposed %v; want exposed %v with 1", step, name, d, ok, disabled)
		}
	}
	// hold opens a connection to port and waits for its child's first
	// line; closing the connection ends the child.
	hold := func(port int) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", "127.0.0.1:"+itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			t.Fatalf("child on port %d: %v", port, err)
		}
		return c
	}
	gone := func(what, name string) {
		t.Helper()
		waitFor(t, what, func() bool {
			_, ok := h.m.Value("superd_service_up", map[string]string{"service": name})
			return !ok
		})
	}

	if c, err := net.Dial("tcp", "127.0.0.1:"+itoa(p1)); err == nil {
		c.Close()
		t.Error("a disabled service's port accepts connections")
	}
	check("disabled at start", "off", true, 0, true)
	check("enabled at start", "held", true, 1, false)

	// Enabled by a reload: listening, and no longer marked.
	h.reloadTo("services:\n" + svc("off", p1, false) + svc("held", p2, false))
	hold(p1).Close()
	check("enabled by a reload", "off", true, 1, false)

	// Removed while its child runs: down on purpose until the child
	// ends, then no series at all.
	c := hold(p2)
	h.reloadTo("services:\n" + svc("off", p1, false))
	check("removed, child running", "held", true, 0, true)
	// superd status lists it, after the configured ones, with its child.
	st, err := h.srv.Status(5 * time.Second)
	if err != nil || len(st) != 2 || st[0].Name != "off" || st[1].Name != "held" || st[1].State != "removed" ||
		st[1].Instances != 1 || len(st[1].Children) != 1 || len(st[1].Sockets) != 0 {
		t.Errorf("status with a removed service's child running: %+v, %v", st, err)
	}
	c.Close()
	gone("the removed service's series to go", "held")
	if st, err := h.srv.Status(5 * time.Second); err != nil || len(st) != 1 {
		t.Errorf("status once the removed service's child ended: %+v, %v", st, err)
	}

	// Removed while its child runs and configured again before the
	// child ends: the new service's series stay.
	c = hold(p1)
	h.reloadTo("services: {}\n")
	check("removed again, child running", "off", true, 0, true)
	h.reloadTo("services:\n" + svc("off", p1, false))
	check("configured again", "off", true, 1, false)
	c.Close()
	h.waitExits("off", 2)
	check("the old child ended", "off", true, 1, false)
	if got := h.instances("off"); got != 0 {
		t.Errorf("superd_instances{service=off} = %v after every child ended, want 0", got)
	}

	// Removed with a child, configured again, removed again with none of
	// its own: the first one's child still counts, so the series stay
	// until it ends.
	c = hold(p1)
	h.reloadTo("services: {}\n")
	h.reloadTo("services:\n" + svc("off", p1, false))
	h.reloadTo("services: {}\n")
	check("removed twice, the first's child running", "off", true, 0, true)
	if got := h.instances("off"); got != 1 {
		t.Errorf("superd_instances{service=off} = %v with the first removed one's child running, want 1", got)
	}
	c.Close()
	gone("the twice-removed service's series to go", "off")

	// Removed with a child, configured again and given a child, removed
	// again: the series stay until the second child ends too.
	h.reloadTo("services:\n" + svc("off", p1, false))
	c = hold(p1)
	h.reloadTo("services: {}\n")
	h.reloadTo("services:\n" + svc("off", p1, false))
	c2 := hold(p1)
	h.reloadTo("services: {}\n")
	c.Close()
	waitFor(t, "the first child's exit", func() bool { return h.instances("off") == 1 })
	check("the second's child running", "off", true, 0, true)
	c2.Close()
	gone("the series to go with the last child", "off")
}

// A built-in serves its connections in superd: a reload that removes it
// while one is open lists it as removed until the connection ends.
func TestStatusListsARemovedBuiltinWhileItServes(t *testing.T) {
	port := freePort(t)
	h := start(t, `
services:
  echo:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    internal: echo
`)
	c, err := net.Dial("tcp", "127.0.0.1:"+itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("hi\n"))
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "hi\n" {
		t.Fatalf("echo: %q, %v", line, err)
	}
	h.reloadTo("services: {}\n")
	st, err := h.srv.Status(5 * time.Second)
	if err != nil || len(st) != 1 || st[0].Name != "echo" || st[0].State != "removed" || st[0].Instances != 1 {
		t.Errorf("status with a removed built-in serving: %+v, %v", st, err)
	}
	c.Close()
	waitFor(t, "the removed built-in's row to go", func() bool {
		st, err := h.srv.Status(5 * time.Second)
		return err == nil && len(st) == 0
	})
}
