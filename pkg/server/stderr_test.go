package server

import (
	"bufio"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scripted is a connection to a stderr-script helper child.
type scripted struct {
	t   *testing.T
	c   net.Conn
	r   *bufio.Reader
	pid int64
}

func dialScript(t *testing.T, addr string) *scripted {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(15 * time.Second))
	s := &scripted{t: t, c: c, r: bufio.NewReader(c)}
	line, err := s.r.ReadString('\n')
	if err != nil {
		t.Fatalf("child's pid: %v", err)
	}
	if s.pid, err = strconv.ParseInt(line[:len(line)-1], 10, 64); err != nil {
		t.Fatalf("child's pid line %q", line)
	}
	return s
}

// do sends one command and waits for the child's "ok".
func (s *scripted) do(cmd string) {
	s.t.Helper()
	if _, err := s.c.Write([]byte(cmd + "\n")); err != nil {
		s.t.Fatal(err)
	}
	if line, err := s.r.ReadString('\n'); err != nil || line != "ok\n" {
		s.t.Fatalf("%q: child answered %q, %v", cmd, line, err)
	}
}

// ask sends one command and returns the child's one-line answer.
func (s *scripted) ask(cmd string) string {
	s.t.Helper()
	if _, err := s.c.Write([]byte(cmd + "\n")); err != nil {
		s.t.Fatal(err)
	}
	line, err := s.r.ReadString('\n')
	if err != nil {
		s.t.Fatalf("%q: %v", cmd, err)
	}
	return strings.TrimSuffix(line, "\n")
}

func (s *scripted) exit() {
	s.t.Helper()
	if _, err := s.c.Write([]byte("exit\n")); err != nil {
		s.t.Fatal(err)
	}
}

// stderrLines returns the logged stderr lines of service svc, by pid.
func (h *harness) stderrLines(svc string) map[int64][]string {
	out := map[int64][]string{}
	for _, e := range h.logs.FilterMessage("stderr").AllUntimed() {
		cm := e.ContextMap()
		if cm["service"] == svc {
			out[cm["pid"].(int64)] = append(out[cm["pid"].(int64)], cm["line"].(string))
		}
	}
	return out
}

func TestStderrOfConcurrentChildrenStaysApart(t *testing.T) {
	port := freePort(t)
	h := start(t, `
services:
  shared:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    exec: ["{{BIN}}", "superd-helper", "stderr-script"]
`)
	addr := "127.0.0.1:" + itoa(port)
	a, b := dialScript(t, addr), dialScript(t, addr)
	// Their writes interleave mid-line.
	a.do("w alpha-")
	b.do("w beta-")
	a.do(`w one\n`)
	b.do(`w two\nbeta-tail`) // no newline: logged at the exit
	a.exit()
	b.exit()
	h.waitExits("shared", 2)
	want := map[int64][]string{a.pid: {"alpha-one"}, b.pid: {"beta-two", "beta-tail"}}
	waitFor(t, "three stderr lines", func() bool {
		got := h.stderrLines("shared")
		return slices.Equal(got[a.pid], want[a.pid]) && slices.Equal(got[b.pid], want[b.pid])
	})
	// A child's unfinished line comes before its exit line.
	var tail, exit int
	for i, e := range h.logs.AllUntimed() {
		cm := e.ContextMap()
		if cm["pid"] != b.pid {
			continue
		}
		switch {
		case e.Message == "stderr" && cm["line"] == "beta-tail":
			tail = i
		case e.Message == "exit":
			exit = i
		}
	}
	if tail > exit {
		t.Errorf("the unfinished line was logged after the exit line")
	}
}

func TestStderrIsReadAcrossReloadsAndAfterItsServiceIsRemoved(t *testing.T) {
	p1, p2 := freePort(t), freePort(t)
	both := `
services:
  a:
    listen: tcp://127.0.0.1:` + itoa(p1) + `
    exec: ["{{BIN}}", "superd-helper", "stderr-script"]
  b:
    listen: tcp://127.0.0.1:` + itoa(p2) + `
    exec: ["{{BIN}}", "superd-helper", "stderr-script"]
`
	h := start(t, both)
	a1 := dialScript(t, "127.0.0.1:"+itoa(p1))
	b1 := dialScript(t, "127.0.0.1:"+itoa(p2))

	// Kept by a reload: the running child's lines, and a new child's,
	// are logged under the service.
	h.reloadTo(both)
	a2 := dialScript(t, "127.0.0.1:"+itoa(p1))
	a1.do(`w from before the reload\n`)
	a2.do(`w from after it\n`)

	// Removed: its child's stderr is still read until the child is done.
	h.reloadTo(`
services:
  a:
    listen: tcp://127.0.0.1:` + itoa(p1) + `
    exec: ["{{BIN}}", "superd-helper", "stderr-script"]
`)
	b1.do(`w after removal\n`)
	b1.exit()
	a1.exit()
	a2.exit()
	waitFor(t, "every line", func() bool {
		a, b := h.stderrLines("a"), h.stderrLines("b")
		return slices.Equal(a[a1.pid], []string{"from before the reload"}) &&
			slices.Equal(a[a2.pid], []string{"from after it"}) &&
			slices.Equal(b[b1.pid], []string{"after removal"})
	})
}

// TestChildrenDoNotShareStderr guards the pipe per child: with one write
// end shared by a service's children (tried, see docs/performance.md), a
// child making its stderr non-blocking made its siblings' stderr
// non-blocking too.
func TestChildrenDoNotShareStderr(t *testing.T) {
	port := freePort(t)
	start(t, `
services:
  s:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    exec: ["{{BIN}}", "superd-helper", "stderr-script"]
`)
	addr := "127.0.0.1:" + itoa(port)
	a := dialScript(t, addr)
	a.do("nonblock")
	b := dialScript(t, addr)
	if got := b.ask("blocking?"); got != "yes" {
		t.Errorf("a sibling's fd 2 is blocking? %q, want yes", got)
	}
	a.exit()
	b.exit()
}
