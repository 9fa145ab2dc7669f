package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loadResult is one load-generator run.
type loadResult struct {
	Conns, Errors, Timeouts int64
	Completed               int64 // warm-up and drain included
	ConnPerS                float64
	P50, P90, P99, Max      float64 // µs
}

// replyLen is the length of the responder's reply; any other length is an
// error.
const replyLen = 16

// runLoad runs the C load generator against 127.0.0.1:port.
func (e *bench) runLoad(port, conc int, udp bool, dur time.Duration) (loadResult, error) {
	return e.runLoadOpts(port, conc, udp, dur, 0)
}

// runLoadOpts is runLoad with a pause of gap after each request (wait mode:
// the server has re-armed before the next one arrives).
func (e *bench) runLoadOpts(port, conc int, udp bool, dur, gap time.Duration) (loadResult, error) {
	threads := e.threads
	if threads > conc {
		threads = conc
	}
	args := []string{
		"-c", strconv.Itoa(conc), "-t", strconv.Itoa(threads),
		"-d", fmt.Sprintf("%.3f", dur.Seconds()), "-n", "2000000",
		"-w", fmt.Sprintf("%.3f", warmupFor(dur).Seconds()),
		"-e", strconv.Itoa(replyLen), "-T", "5",
	}
	if udp {
		// A datagram a server drops (xinetd discards what is queued when
		// a wait-mode child exits) is a timeout; keep it short.
		args = append(args, "-u", "-T", "0.2")
	}
	if gap > 0 {
		args = append(args, "-g", strconv.FormatInt(gap.Microseconds(), 10))
	}
	args = append(args, "127.0.0.1", strconv.Itoa(port))
	// The generator bounds itself (duration, count, per-request timeout);
	// this is a backstop.
	ctx, cancel := context.WithTimeout(context.Background(), dur+20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.loadgen, args...)
	var stdout strings.Builder
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		return loadResult{}, fmt.Errorf("loadgen: %w", err)
	}
	setLoadgen(cmd.Process)
	err := cmd.Wait()
	setLoadgen(nil)
	out := stdout.String()
	if err != nil {
		return loadResult{}, fmt.Errorf("loadgen %s: %w", strings.Join(args, " "), err)
	}
	return parseLoad(out)
}

var (
	loadgenMu  sync.Mutex
	loadgenNow *os.Process
)

// setLoadgen records the load generator running now, so an interrupt can
// stop it too.
func setLoadgen(p *os.Process) {
	loadgenMu.Lock()
	loadgenNow = p
	loadgenMu.Unlock()
}

// stopLoadgen kills the load generator running now, if any.
func stopLoadgen() {
	loadgenMu.Lock()
	if loadgenNow != nil {
		loadgenNow.Kill()
	}
	loadgenMu.Unlock()
}

func warmupFor(dur time.Duration) time.Duration {
	w := dur / 10
	if w > 500*time.Millisecond {
		w = 500 * time.Millisecond
	}
	return w
}

func parseLoad(out string) (loadResult, error) {
	var r loadResult
	seen := 0
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return r, fmt.Errorf("loadgen: bad line %q", line)
		}
		seen++
		switch k {
		case "conns":
			r.Conns = int64(f)
		case "errors":
			r.Errors = int64(f)
		case "timeouts":
			r.Timeouts = int64(f)
		case "conn_per_s":
			r.ConnPerS = f
		case "p50_us":
			r.P50 = f
		case "p90_us":
			r.P90 = f
		case "p99_us":
			r.P99 = f
		case "max_us":
			r.Max = f
		case "completed":
			r.Completed = int64(f)
		case "window_s", "mean_us":
		default:
			seen--
		}
	}
	if seen < 11 {
		return r, fmt.Errorf("loadgen: incomplete output %q", out)
	}
	return r, nil
}

// median of xs (NaN-free); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// agg collects one measurement over rounds.
type agg struct {
	connPerS, p50, p99 []float64
	cpuUs              []float64 // server CPU per connection
	errors, timeouts   int64
	conns              int64
}

func (a *agg) add(r loadResult) {
	a.connPerS = append(a.connPerS, r.ConnPerS)
	a.p50 = append(a.p50, r.P50)
	a.p99 = append(a.p99, r.P99)
	a.errors += r.Errors
	a.timeouts += r.Timeouts
	a.conns += r.Conns
}

// addCPU records the server's CPU time over a run, per completed request.
func (a *agg) addCPU(cpu time.Duration, r loadResult) {
	if r.Completed > 0 && cpu >= 0 {
		a.cpuUs = append(a.cpuUs, float64(cpu.Microseconds())/float64(r.Completed))
	}
}

func (a *agg) ok() bool { return a != nil && len(a.connPerS) > 0 }

func (a *agg) rate() float64 { return median(a.connPerS) }
func (a *agg) p50ms() float64 {
	return median(a.p50) / 1000
}
func (a *agg) p99ms() float64 {
	return median(a.p99) / 1000
}
