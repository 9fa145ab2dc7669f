package server

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superd/superd/pkg/config"
)

// unixListens is a YAML list (indented for a service's listen key) of n
// UNIX sockets in dir, named s0, s1...
func unixListens(dir string, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "      - unix://%s\n", filepath.Join(dir, "s"+strconv.Itoa(i)))
	}
	return b.String()
}

// fdCount counts the entries of an fd table as /proc shows it.
func fdCount(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// A fork copies the forking thread's fd table; the spawners' tables hold a
// handful of entries however many sockets superd has open, and a child still
// gets exactly its own fds.
func TestSpawnersForkFromASmallTable(t *testing.T) {
	dir := t.TempDir()
	const sockets = 150
	listens := unixListens(dir, sockets)
	port := freePort(t)
	h := start(t, `
services:
  many:
    listen:
`+listens+`
    exec: ["{{BIN}}", "superd-helper", "echo"]
  rep:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    exec: ["{{BIN}}", "superd-helper", "report"]
`)
	if n := fdCount(t, "/proc/self/fd"); n < sockets {
		t.Fatalf("superd's table has %d entries, want at least %d", n, sockets)
	}
	spawnerTables := func() (private int) {
		t.Helper()
		for _, sp := range h.srv.pool.spawners {
			if !sp.private {
				continue // it ran on the main thread, which keeps sharing
			}
			private++
			if n := fdCount(t, fmt.Sprintf("/proc/self/task/%d/fd", sp.tid)); n > 8 {
				t.Errorf("spawner thread %d has %d fds, want a handful", sp.tid, n)
			}
		}
		return private
	}
	if spawnerTables() == 0 {
		t.Fatal("no spawner has a private fd table")
	}
	r, _ := dialReport(t, "tcp", "127.0.0.1:"+itoa(port))
	if got, want := fdKinds(r.FDs), map[int]string{0: "socket", 1: "socket", 2: "pipe"}; !sameMap(got, want) {
		t.Errorf("child fds = %v, want %v", r.FDs, want)
	}
	h.waitExits("rep", 1)
	// What a spawner received for the child is closed again.
	spawnerTables()
	if got, err := echo("unix", filepath.Join(dir, "s77"), "hello"); err != nil || got != "hello" {
		t.Errorf("echo over socket 77 = %q, %v", got, err)
	}
}

// More spawns at once than may be in flight to the spawners wait in the
// loop, in order, and every one is served.
func TestSpawnsBeyondTheInFlightBoundWaitTheirTurn(t *testing.T) {
	old := maxInFlight
	maxInFlight = 2
	t.Cleanup(func() { maxInFlight = old })
	port := freePort(t)
	h := start(t, `
services:
  echo:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    exec: ["{{BIN}}", "superd-helper", "echo"]
`)
	const clients = 30
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			msg := "client " + strconv.Itoa(i)
			got, err := echo("tcp", "127.0.0.1:"+itoa(port), msg)
			if err == nil && got != msg {
				err = fmt.Errorf("got %q, want %q", got, msg)
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	h.waitExits("echo", clients)
	if got := h.activations("echo"); got != clients {
		t.Errorf("activations = %v, want %d", got, clients)
	}
}

// echo sends msg, half-closes and reads the answer to EOF.
func echo(network, addr, msg string) (string, error) {
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String(), nil
		}
	}
}

// The loop says when it has had nothing to do for IdleAfter, and when work
// comes again; nothing else wakes it in between.
func TestLoopReportsIdleAndBusy(t *testing.T) {
	port := freePort(t)
	cfg, err := config.Parse("test.yaml", []byte(`
services:
  echo:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    exec: ["`+helperBinary(t)+`", "superd-helper", "echo"]
`), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	states := make(chan bool, 16)
	srv, err := New(cfg, Options{Idle: func(idle bool) { states <- idle }, IdleAfter: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run() }()
	t.Cleanup(func() {
		srv.Shutdown()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	// States alternate, starting idle; settle reads them until the loop
	// is idle again, checking that it was busy in between.
	last := false
	recv := func() bool {
		t.Helper()
		select {
		case got := <-states:
			if got == last {
				t.Fatalf("Idle(%v) twice in a row", got)
			}
			last = got
			return got
		case <-time.After(10 * time.Second):
			t.Fatal("no Idle call within 10s")
			return false
		}
	}
	if !recv() {
		t.Fatal("first call is Idle(false), want Idle(true)")
	}
	settle := func(what string) {
		t.Helper()
		if recv() {
			t.Fatalf("%s: Idle(true) without Idle(false) first", what)
		}
		for !recv() {
		}
	}
	if got, err := echo("tcp", "127.0.0.1:"+itoa(port), "hi"); err != nil || got != "hi" {
		t.Fatalf("echo = %q, %v", got, err)
	}
	waitFor(t, "the child reaped", func() bool {
		st, err := srv.Status(5 * time.Second)
		return err == nil && st[0].Instances == 0
	})
	settle("a connection")
	for len(states) > 0 { // the status calls were events too
		recv()
	}
	for !last {
		recv()
	}
	srv.Touch()
	settle("Touch")
	select {
	case got := <-states:
		t.Fatalf("Idle(%v) while nothing happened", got)
	case <-time.After(200 * time.Millisecond): // 4 x IdleAfter
	}
}

// A child with more fds than one spawn message carries (the kernel passes
// at most 253) is started all the same, with every socket in order.
func TestAListenFDsChildWithHundredsOfSocketsStarts(t *testing.T) {
	dir := t.TempDir()
	const sockets = 260
	listens := unixListens(dir, sockets)
	h := start(t, `
services:
  wide:
    listen:
`+listens+`
    mode: wait
    pass: listen_fds
    exec: ["{{BIN}}", "superd-helper", "accept-report"]
`)
	r, _ := dialReport(t, "unix", filepath.Join(dir, "s"+strconv.Itoa(sockets-1)))
	if r.ServedOnFD != 3+sockets-1 {
		t.Errorf("served on fd %d, want %d", r.ServedOnFD, 3+sockets-1)
	}
	if r.Env["LISTEN_FDS"] != strconv.Itoa(sockets) {
		t.Errorf("LISTEN_FDS = %q, want %d", r.Env["LISTEN_FDS"], sockets)
	}
	if n := len(r.FDs); n != 3+sockets {
		t.Errorf("child has %d fds, want %d", n, 3+sockets)
	}
	h.waitExits("wide", 1)
	if got := h.rejected("wide", "spawn_error"); got != 0 {
		t.Errorf("spawn errors = %v", got)
	}
}

// benchConnections runs b.N connections through one accept-mode service
// whose child (/bin/true) exits at once, conc at a time, and reports
// connections per second. A regression in the accept → spawn → reap path
// shows here; docs/performance.md has the comparison with other servers.
func benchConnections(b *testing.B, conc int) {
	if _, err := os.Stat("/bin/true"); err != nil {
		b.Skip("no /bin/true")
	}
	port := freePort(b)
	h := start(b, `
log: {level: warn}
services:
  bench:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    exec: [/bin/true]
    stderr: discard
`)
	addr := "127.0.0.1:" + itoa(port)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 16)
			for next.Add(1) <= int64(b.N) {
				c, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err != nil {
					b.Error(err)
					return
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				for {
					if _, err := c.Read(buf); err != nil {
						break // EOF: the child has exited
					}
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conn/s")
	h.waitExits("bench", float64(b.N))
}

func BenchmarkConnection(b *testing.B)          { benchConnections(b, 1) }
func BenchmarkConnectionParallel8(b *testing.B) { benchConnections(b, 8) }
