package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/superd/superd/pkg/metrics"
)

// dialFrom connects to addr from the loopback address src.
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	return d.Dial("tcp", addr)
}

// holdOpen connects and waits for the hold helper's pid line; it reports
// false if the connection was closed instead (refused by superd).
func holdOpen(t *testing.T, src, addr string) (net.Conn, bool) {
	t.Helper()
	c, err := dialFrom(src, addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		c.Close()
		return nil, false
	}
	c.SetDeadline(time.Time{})
	return c, true
}

func TestMaxInstancesHoldsUnderConcurrentClients(t *testing.T) {
	port := freePort(t)
	h := start(t, `
services:
  three:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    max_instances: 3
    exec: ["{{BIN}}", "superd-helper", "hold"]
`)
	addr := "127.0.0.1:" + itoa(port)
	// Sample the instance count while 30 slow clients arrive at once.
	var peak float64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stopSampling:
				return
			default:
			}
			if n := h.instances("three"); n > peak {
				peak = n
			}
			st, err := h.srv.Status(time.Second)
			if err == nil && st[0].Instances > int(peak) {
				peak = float64(st[0].Instances)
			}
		}
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var held []net.Conn
	refused := 0
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, ok := holdOpen(t, "127.0.0.1", addr)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				held = append(held, c)
			} else {
				refused++
			}
		}()
	}
	wg.Wait()
	close(stopSampling)
	<-sampled
	t.Logf("peak %v children, %d held, %d refused", peak, len(held), refused)
	if len(held) != 3 || refused != 27 {
		t.Errorf("%d clients served and %d refused, want 3 and 27", len(held), refused)
	}
	if peak > 3 {
		t.Errorf("peak of %v children, max_instances is 3", peak)
	}
	if got := h.rejected("three", metrics.ReasonMaxInstances); got != 27 {
		t.Errorf("rejected{max_instances} = %v, want 27", got)
	}
	if got := h.accepted("three"); got != 30 {
		t.Errorf("accepted = %v, want 30", got)
	}
	if n := h.logs.FilterMessage("connection refused").Len(); n > 2 {
		t.Errorf("%d refusal lines logged for 27 refusals within a second; want them rate-limited", n)
	}
	for _, c := range held {
		c.Close()
	}
	h.waitExits("three", 3)
	// A slot is free again.
	if c, ok := holdOpen(t, "127.0.0.1", addr); !ok {
		t.Error("no child after the others finished")
	} else {
		c.Close()
	}
}

func TestMaxPerSourceCountsEachClientAddress(t *testing.T) {
	port := freePort(t)
	h := start(t, `
services:
  fair:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    max_per_source: 2
    exec: ["{{BIN}}", "superd-helper", "hold"]
`)
	addr := "127.0.0.1:" + itoa(port)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for _, src := range []string{"127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"} {
		c, ok := holdOpen(t, src, addr)
		if !ok {
			t.Fatalf("client from %s refused below its limit", src)
		}
		held = append(held, c)
	}
	for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
		if _, ok := holdOpen(t, src, addr); ok {
			t.Errorf("third client from %s served; max_per_source is 2", src)
		}
	}
	if got := h.rejected("fair", metrics.ReasonMaxPerSource); got != 2 {
		t.Errorf("rejected{max_per_source} = %v, want 2", got)
	}
	// When one of 127.0.0.2's children ends, 127.0.0.2 may connect again.
	held[0].Close()
	h.waitExits("fair", 1)
	c, ok := holdOpen(t, "127.0.0.2", addr)
	if !ok {
		t.Fatal("127.0.0.2 refused after one of its children ended")
	}
	held = append(held, c)
}

func TestAllowDenyRefusesBeforeSpawning(t *testing.T) {
	port := freePort(t)
	h := start(t, `
services:
  guarded:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    allow: [127.0.0.0/8]
    deny: [127.0.0.3]
    exec: ["{{BIN}}", "superd-helper", "report"]
`)
	addr := "127.0.0.1:" + itoa(port)
	c, err := dialFrom("127.0.0.2", addr)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	c.Close()
	if !strings.Contains(string(b), `"REMOTE_ADDR":"127.0.0.2"`) {
		t.Errorf("127.0.0.2 (allowed) got %q", b)
	}
	c, err = dialFrom("127.0.0.3", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, _ = io.ReadAll(c)
	c.Close()
	if len(b) != 0 {
		t.Errorf("127.0.0.3 (denied) got %q", b)
	}
	if got := h.rejected("guarded", metrics.ReasonAccess); got != 1 {
		t.Errorf("rejected{access} = %v, want 1", got)
	}
	if got := h.activations("guarded"); got != 1 {
		t.Errorf("activations = %v, want 1 (nothing spawned for the denied client)", got)
	}
}

func TestAccessTimesRefuseOutsideTheWindow(t *testing.T) {
	port := freePort(t)
	// A one-minute window twelve hours away is closed now.
	now := time.Now()
	from := now.Add(12 * time.Hour)
	window := fmt.Sprintf("%02d:%02d-%02d:%02d", from.Hour(), from.Minute(), from.Add(time.Minute).Hour(), from.Add(time.Minute).Minute())
	h := start(t, `
services:
  office:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    access_times: ["`+window+`"]
    exec: ["{{BIN}}", "superd-helper", "report"]
`)
	if got := dialRead(t, "tcp", "127.0.0.1:"+itoa(port)); got != "" {
		t.Errorf("outside its access_times the service answered %q", got)
	}
	if got := h.rejected("office", metrics.ReasonAccessTimes); got != 1 {
		t.Errorf("rejected{access_times} = %v, want 1", got)
	}
}

func TestRateLimitPausesAndServesTheBacklogAfterwards(t *testing.T) {
	port := freePort(t)
	h := start(t, `
services:
  limited:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    rate_limit: {max: 3, per: 10s, pause: 700ms}
    exec: ["{{BIN}}", "superd-helper", "stderr"]
`)
	addr := "127.0.0.1:" + itoa(port)
	for i := 0; i < 3; i++ {
		if got := dialRead(t, "tcp", addr); got != "done\n" {
			t.Fatalf("activation %d: %q", i, got)
		}
	}
	// The fourth within the window is refused and the service pauses.
	begin := time.Now()
	if got := dialRead(t, "tcp", addr); got != "" {
		t.Errorf("fourth activation answered %q, want a refusal", got)
	}
	st, _ := h.srv.Status(time.Second)
	if st[0].State != "paused" {
		t.Errorf("state = %s, want paused", st[0].State)
	}
	if got := h.up("limited"); got != 0 {
		t.Errorf("superd_service_up during the pause = %v, want 0", got)
	}
	// Connections made during the pause wait in the backlog and are
	// served when it ends.
	got := dialRead(t, "tcp", addr)
	waited := time.Since(begin)
	if got != "done\n" {
		t.Errorf("connection made during the pause got %q", got)
	}
	if waited < 600*time.Millisecond {
		t.Errorf("served after %v, before the 700ms pause ended", waited)
	}
	if got := h.rejected("limited", metrics.ReasonRateLimit); got != 1 {
		t.Errorf("rejected{rate_limit} = %v, want 1", got)
	}
}

func TestMaxDurationStopsTheChild(t *testing.T) {
	port := freePort(t)
	h := start(t, `
services:
  brief:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    max_duration: 2s
    exec: ["{{BIN}}", "superd-helper", "hold"]
`)
	// (2 s: the helper must have its SIGTERM handler before then, which a
	// race-enabled runtime on a loaded machine may take a while to reach.)
	c, ok := holdOpen(t, "127.0.0.1", "127.0.0.1:"+itoa(port))
	if !ok {
		t.Fatal("not served")
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	if line != "term\n" {
		t.Errorf("child said %q, want term (stopped by max_duration)", line)
	}
	h.waitExits("brief", 1)
	if got := h.exits("brief", metrics.OutcomeStopped); got != 1 {
		t.Errorf("stopped exits = %v, want 1", got)
	}
}

func TestInternalServicesOverTCPAndUDP(t *testing.T) {
	tcpPort, udpPort := freePort(t), freePort(t)
	h := start(t, `
services:
  echo-tcp:
    listen: tcp://127.0.0.1:`+itoa(tcpPort)+`
    internal: echo
  daytime-udp:
    listen: udp://127.0.0.1:`+itoa(udpPort)+`
    internal: daytime
`)
	if got := dialEcho(t, "127.0.0.1:"+itoa(tcpPort), "ping\n"); got != "ping\n" {
		t.Errorf("echo answered %q", got)
	}
	u, err := net.Dial("udp", "127.0.0.1:"+itoa(udpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(10 * time.Second))
	u.Write([]byte("?"))
	buf := make([]byte, 128)
	n, err := u.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := time.ParseInLocation(time.ANSIC+"\r\n", string(buf[:n]), time.Local); err != nil {
		t.Errorf("daytime answered %q: %v", buf[:n], err)
	}
	h.waitExits("echo-tcp", 1)
	if got := h.activations("echo-tcp") + h.activations("daytime-udp"); got != 2 {
		t.Errorf("activations = %v, want 2", got)
	}
}

func TestRedirectRelaysBothWays(t *testing.T) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		c, err := backend.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Fprintf(c, "backend got %s", line)
	}()
	port := freePort(t)
	h := start(t, `
services:
  relay:
    listen: tcp://127.0.0.1:`+itoa(port)+`
    redirect: `+backend.Addr().String()+`
`)
	if got := dialEcho(t, "127.0.0.1:"+itoa(port), "hello\n"); got != "backend got hello\n" {
		t.Errorf("through the redirect: %q", got)
	}
	h.waitExits("relay", 1)
	if got := h.exits("relay", metrics.OutcomeSuccess); got != 1 {
		t.Errorf("successful sessions = %v, want 1", got)
	}
}
