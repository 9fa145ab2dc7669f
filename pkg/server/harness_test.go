package server

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/superd/superd/internal/testport"
	"github.com/superd/superd/pkg/config"
	"github.com/superd/superd/pkg/metrics"
)

var (
	helperOnce sync.Once
	helperBin  string
)

// helperBinary is a copy of the test binary in a directory anyone may
// traverse, so children that run as nobody can execute it too.
func helperBinary(t testing.TB) string {
	t.Helper()
	helperOnce.Do(func() {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		dir, err := os.MkdirTemp("", "superd-helper-")
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, 0o755)
		data, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		helperBin = filepath.Join(dir, "helper")
		if err := os.WriteFile(helperBin, data, 0o755); err != nil {
			t.Fatal(err)
		}
	})
	return helperBin
}

// freePort is a loopback port free over TCP and UDP (testport.Free).
func freePort(t testing.TB) int {
	t.Helper()
	return testport.Free(t)
}

// harness is one running Server with a log observer and its metrics.
type harness struct {
	t    testing.TB
	srv  *Server
	logs *observer.ObservedLogs
	m    *metrics.Metrics
	cfg  *config.Config
	done chan error
}

// start parses yamlText (with {{BIN}} replaced by the helper binary) and
// runs a Server on it until the test ends.
func start(t testing.TB, yamlText string) *harness {
	t.Helper()
	yamlText = strings.ReplaceAll(yamlText, "{{BIN}}", helperBinary(t))
	cfg, err := config.Parse("test.yaml", []byte(yamlText), config.Options{AsRoot: false})
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yamlText)
	}
	core, logs := observer.New(zap.DebugLevel)
	h := &harness{t: t, logs: logs, m: metrics.New("test"), cfg: cfg, done: make(chan error, 1)}
	h.srv, err = New(cfg, Options{Logger: zap.New(core), Metrics: h.m})
	if err != nil {
		t.Fatal(err)
	}
	go func() { h.done <- h.srv.Run() }()
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			// The last lines, so a flood's failure stays readable.
			const show = 300
			all := logs.AllUntimed()
			if len(all) > show {
				t.Logf("log: (%d earlier lines left out)", len(all)-show)
				all = all[len(all)-show:]
			}
			for _, e := range all {
				t.Logf("log: %s %v", e.Message, e.ContextMap())
			}
		}
	})
	return h
}

// stop shuts the server down and waits for Run to return.
func (h *harness) stop() {
	h.srv.Shutdown()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
		h.done <- nil // later stops return at once
	case <-time.After(30 * time.Second):
		h.t.Fatal("server did not stop within 30s")
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// value reads one series as a scrape sees it; a series not exposed (yet)
// reads as 0.
func (h *harness) value(name string, labels map[string]string) float64 {
	v, _ := h.m.Value(name, labels)
	return v
}

func (h *harness) activations(svc string) float64 {
	return h.value("superd_activations_total", map[string]string{"service": svc})
}

func (h *harness) accepted(svc string) float64 {
	return h.value("superd_connections_accepted_total", map[string]string{"service": svc})
}

func (h *harness) exits(svc, outcome string) float64 {
	return h.value("superd_child_exits_total", map[string]string{"service": svc, "outcome": outcome})
}

func (h *harness) rejected(svc, reason string) float64 {
	return h.value("superd_connections_rejected_total", map[string]string{"service": svc, "reason": reason})
}

func (h *harness) instances(svc string) float64 {
	return h.value("superd_instances", map[string]string{"service": svc})
}

// waitExits waits until svc has n child exits of any outcome.
func (h *harness) waitExits(svc string, n float64) {
	h.t.Helper()
	waitFor(h.t, "child exits of "+svc, func() bool {
		total := 0.0
		for _, o := range []string{metrics.OutcomeSuccess, metrics.OutcomeFailure, metrics.OutcomeSignal, metrics.OutcomeStopped} {
			total += h.exits(svc, o)
		}
		return total >= n
	})
}

// udpAsker dials addr, a udp-reply helper service, and returns a function
// that sends msg and returns the pid of the child that echoed it.
func udpAsker(t *testing.T, addr string) func(msg string) (pid string) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func(msg string) string {
		t.Helper()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 256)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		p, payload, _ := strings.Cut(string(buf[:n]), ":")
		if payload != msg {
			t.Errorf("reply payload %q, want %q", payload, msg)
		}
		return p
	}
}

// dialRead connects and reads everything the child writes until it closes.
func dialRead(t *testing.T, network, addr string) string {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read from %s: %v", addr, err)
	}
	return string(b)
}

// dialReport connects and decodes the report helper's answer.
func dialReport(t *testing.T, network, addr string) (report, net.Addr) {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	var r report
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&r); err != nil {
		t.Fatalf("decode report from %s: %v", addr, err)
	}
	return r, c.LocalAddr()
}

func itoa(i int) string { return strconv.Itoa(i) }

func (h *harness) up(svc string) float64 {
	return h.value("superd_service_up", map[string]string{"service": svc})
}
