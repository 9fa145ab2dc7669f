package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"
)

// ratio is a/b, or NaN when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

func fmtRatio(r float64) string {
	if math.IsNaN(r) {
		return "–"
	}
	return fmt.Sprintf("%.2f", r)
}

func (e *bench) floorRate(c int) float64 {
	if a := e.accept["floor"][c]; a.ok() {
		return a.rate()
	}
	return 0
}

// acceptNames are the servers with accept-mode results, in report order.
func (e *bench) acceptNames() []string {
	var out []string
	for _, s := range e.servers {
		if len(e.accept[s.name]) > 0 {
			out = append(out, s.name)
		}
	}
	return out
}

func (e *bench) markdown() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	version := "unknown"
	if out, err := exec.Command(e.superd, "version").Output(); err == nil {
		version = strings.Join(strings.Fields(string(out)), " ")
	}
	w("# superd benchmark\n\n")
	w("- run: %s, took %s\n", e.started.UTC().Format("2006-01-02 15:04 UTC"), time.Since(e.started).Round(time.Second))
	cmdline := "go run ./bench/cmd/bench"
	if len(e.args) > 0 {
		cmdline += " " + strings.Join(e.args, " ")
	}
	w("- command: `%s` (from the repository root; `make bench` runs it without flags)\n", cmdline)
	w("- load average (1, 5, 15 min) at the start: %s; at the end: %s — anything above what the benchmark itself adds (about 2) is other work on the machine\n", e.loadStart, loadAvg())
	w("- machine: %d cores online (%s), %s, Linux %s, %s\n", runtime.NumCPU(), cpuModel(), modeName(e), strings.TrimSpace(string(kernel)), runtime.Version())
	w("- superd: %s, log level %s\n", version, e.superdLog)
	if e.kit {
		w("- peers: from bench/.peers/kit (make bench-kit), each run through the dynamic loader and libraries copied there: their RSS is 0.2–0.6 MiB above an installed copy's\n")
	}
	w("- load: C closed-loop generator on 127.0.0.1, %d thread(s); each request is connect → read to EOF → close; %d interleaved rounds, medians shown; first %s of each run not counted\n\n",
		e.threads, e.rounds, warmupFor(e.dur))

	// concHeader starts a table with a column per concurrency level.
	concHeader := func() {
		w("| server |")
		for _, c := range e.conc {
			w(" c=%d |", c)
		}
		w("\n|---|")
		for range e.conc {
			w("---:|")
		}
		w("\n")
	}
	if names := e.acceptNames(); len(names) > 0 {
		w("## Accept mode: connections per second (ratio to the floor)\n\n")
		w("One child per connection, static C responder, %s per level.\n\n", e.dur)
		concHeader()
		for _, n := range names {
			w("| %s |", n)
			for _, c := range e.conc {
				if a := e.accept[n][c]; a.ok() {
					w(" %.0f (%s) |", a.rate(), fmtRatio(ratio(a.rate(), e.floorRate(c))))
				} else {
					w(" – |")
				}
			}
			w("\n")
		}
		if f := e.accept["floor"]; len(f) > 0 && e.rounds > 1 {
			w("\nRound-to-round spread of the floor, (max − min) / median:")
			for _, c := range e.conc {
				if a := f[c]; a.ok() {
					w(" c=%d %.0f %%;", c, 100*spread(a.connPerS))
				}
			}
			w(" a measure of the machine's noise during this run.\n")
		}
		w("\n## Accept mode: latency p50 / p99 in ms (p99 ratio to the floor)\n\n")
		concHeader()
		for _, n := range names {
			w("| %s |", n)
			for _, c := range e.conc {
				a := e.accept[n][c]
				f := e.accept["floor"][c]
				if a.ok() {
					fr := math.NaN()
					if f.ok() {
						fr = ratio(a.p99ms(), f.p99ms())
					}
					w(" %.2f / %.2f (%s) |", a.p50ms(), a.p99ms(), fmtRatio(fr))
				} else {
					w(" – |")
				}
			}
			w("\n")
		}
		w("\n## Accept mode: CPU time of the server process per connection (µs)\n\n")
		w("User + system time of every thread of the server process (/proc/PID/stat) over the run, divided by the requests completed. A child's time before it execs (fork or vfork) is the child's, not the server's.\n\n")
		concHeader()
		for _, n := range names {
			w("| %s |", n)
			for _, c := range e.conc {
				if a := e.accept[n][c]; a.ok() && len(a.cpuUs) > 0 {
					w(" %.0f |", median(a.cpuUs))
				} else {
					w(" – |")
				}
			}
			w("\n")
		}
		w("\n## Memory: RSS of the server process (MiB)\n\n")
		w("| server | 0.3 s after start | peak (VmHWM after the load) | errors / timeouts |\n|---|---:|---:|---:|\n")
		for _, n := range names {
			m := e.mem[n]
			var errs, tmo int64
			for _, a := range e.accept[n] {
				errs += a.errors
				tmo += a.timeouts
			}
			if m == nil {
				continue
			}
			w("| %s | %.1f | %.1f | %d / %d |\n", n, median(m.idle)/1024, maxOf(m.peak)/1024, errs, tmo)
		}
		w("\n")
	}

	if len(e.idleRes) > 0 {
		w("## Idle: context switches of all threads over %s\n\n", e.idle)
		w("Every server started at once, each on its own port; the window opens 3 s after they listen. Sum of voluntary and involuntary switches over /proc/PID/task/*/status.\n\n")
		w("RSS is VmRSS; *anonymous* is RssAnon, the process's own memory, without the pages of its executable and libraries that it shares with every process mapping them (for a static Go binary most of its RSS).\n\n")
		w("| server | configuration | threads | context switches | RSS (MiB) | anonymous (MiB) |\n|---|---|---:|---:|---:|---:|\n")
		for _, r := range e.idleRes {
			if r.err != "" {
				w("| %s | %s | – | failed: %s | – | – |\n", r.name, r.config, oneLine(r.err))
				continue
			}
			w("| %s | %s | %d | %d | %.1f | %.1f |\n", r.name, r.config, r.threads, r.switches, float64(r.rssKB)/1024, float64(r.anonKB)/1024)
		}
		w("\n")
	}

	if len(e.wait) > 0 {
		w("## Wait mode: one child holds the socket\n\n")
		w("Concurrency 1, %s per run. TCP: the child accepts one connection on fd 0 and answers; UDP: it answers one datagram read from fd 0. "+
			"*Back to back*: the next request leaves as soon as the previous reply is in, so it also waits for the server to re-arm after the child exits. "+
			"*Spaced*: %s pause after each reply, so the server has re-armed: the latency is the activation alone (first packet → child has the socket → reply). "+
			"UDP *lost*: requests unanswered within 200 ms.\n\n", e.waitDur, waitGap)
		w("| server | TCP back to back: req/s (×floor) | p50 / p99 ms | TCP spaced: p50 / p99 ms | UDP back to back: req/s (×floor), lost | UDP spaced: p50 / p99 ms |\n|---|---:|---:|---:|---:|---:|\n")
		for _, s := range e.servers {
			m := e.wait[s.name]
			if m == nil {
				continue
			}
			w("| %s |", s.name)
			for _, kind := range []string{"tcp-wait", "udp-wait"} {
				b2b, gap := m[kind+"/b2b"], m[kind+"/gap"]
				f := e.wait["floor"][kind+"/b2b"]
				if b2b.ok() {
					fr := math.NaN()
					if f.ok() {
						fr = ratio(b2b.rate(), f.rate())
					}
					if kind == "udp-wait" {
						w(" %.0f (%s), %d |", b2b.rate(), fmtRatio(fr), b2b.timeouts)
					} else {
						w(" %.0f (%s) | %.3f / %.3f |", b2b.rate(), fmtRatio(fr), b2b.p50ms(), b2b.p99ms())
					}
				} else if kind == "udp-wait" {
					w(" – |")
				} else {
					w(" – | – |")
				}
				if gap.ok() {
					w(" %.3f / %.3f |", gap.p50ms(), gap.p99ms())
				} else {
					w(" – |")
				}
			}
			w("\n")
		}
		if x, ok := e.rearmEstimate(); ok {
			w("\nRe-arm estimate for superd (TCP): (back-to-back p50 − spaced p50) − the same difference for the floor, whose re-arm is one poll(2) after waitpid(2): **%.3f ms** "+
				"(a value within ±0.05 ms of zero is below what this method resolves).\n", x)
		}
		w("\n")
	}

	if len(e.scale) > 0 {
		w("## Scale: one server, many configured services\n\n")
		w("Each service listens on its own 127.0.0.1 port; the load (c=%d, %s) goes to the last one. Startup: from exec until every socket listens (sock_diag). RSS: %s after that, settled. "+
			"The floor rows are the reference: one socket, plus as many other open (close-on-exec) fds as the servers have sockets — what each spawn costs in the kernel (copying the fd table, closing those fds at exec) in any process that holds them.\n\n", e.scaleConc, e.scaleDur, scaleSettle)
		w("| server | services | startup (s) | RSS (MiB) | conn/s | ×(1 service) | errors |\n|---|---:|---:|---:|---:|---:|---:|\n")
		for _, name := range []string{"floor", "superd", "xinetd"} {
			st := e.scale[name]
			base := 0.0
			if st[1] != nil {
				base = median(st[1].rate)
			}
			for _, n := range e.sizes {
				x := st[n]
				if x == nil || len(x.rate) == 0 {
					continue
				}
				label, startup := name, fmt.Sprintf("%.3f", median(x.startup))
				if name == "floor" {
					label, startup = fmt.Sprintf("floor + %d fds", n-1), "–"
				}
				w("| %s | %d | %s | %.1f | %.0f | %s | %d |\n", label, n, startup, median(x.rss)/1024,
					median(x.rate), fmtRatio(ratio(median(x.rate), base)), x.errors)
			}
		}
		w("\n")
	}

	w("## Issue 7 targets\n\n")
	w("| target | measured | status |\n|---|---|---|\n")
	for _, t := range e.targets() {
		w("| %s | %s | %s |\n", t[0], t[1], t[2])
	}
	w("\n")

	if len(e.failed) > 0 || len(e.notes) > 0 || len(e.skipped) > 0 {
		w("## Notes\n\n")
		for _, n := range e.notes {
			w("- %s\n", n)
		}
		keys := make([]string, 0, len(e.failed))
		for k := range e.failed {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			w("- %s failed: %s\n", k, oneLine(e.failed[k]))
		}
		if len(e.skipped) > 0 {
			w("- time budget spent; skipped: %s\n", strings.Join(e.skipped, "; "))
		}
		w("\n")
	}
	return b.String()
}

func modeName(e *bench) string {
	if e.multicore {
		return "multicore mode"
	}
	return "2-core mode"
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.ReplaceAll(s, "|", "\\|")
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = math.Max(m, x)
	}
	return m
}

// rearmEstimate estimates superd's wait-mode re-arm delay (TCP, median):
// how much more a back-to-back request waits than a spaced one, less the
// same difference for the floor (which re-arms with one poll after
// waitpid), so effects of a warm versus an idle machine cancel out.
func (e *bench) rearmEstimate() (float64, bool) {
	sb, sg := e.wait["superd"]["tcp-wait/b2b"], e.wait["superd"]["tcp-wait/gap"]
	fb, fg := e.wait["floor"]["tcp-wait/b2b"], e.wait["floor"]["tcp-wait/gap"]
	if !sb.ok() || !sg.ok() || !fb.ok() || !fg.ok() {
		return 0, false
	}
	return (sb.p50ms() - sg.p50ms()) - (fb.p50ms() - fg.p50ms()), true
}

func status(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// targets evaluates issue 7's targets against this run: rows of target,
// measured, status.
func (e *bench) targets() [][3]string {
	var rows [][3]string
	sup := e.accept["superd"]
	if len(sup) > 0 && len(e.accept["floor"]) > 0 {
		for _, c := range []int{1, 8, 64} {
			a := sup[c]
			if !a.ok() || e.floorRate(c) == 0 {
				continue
			}
			r := ratio(a.rate(), e.floorRate(c))
			extra := ""
			if fs := e.accept["floor-setsid"][c]; fs.ok() {
				extra = fmt.Sprintf("; %.2f × floor-setsid", a.rate()/fs.rate())
			}
			rows = append(rows, [3]string{fmt.Sprintf("accept c=%d: conn/s ≥ 0.95 × floor", c),
				fmt.Sprintf("%.2f × (%.0f vs %.0f%s)", r, a.rate(), e.floorRate(c), extra), status(r >= 0.95)})
			best, bestName := 0.0, ""
			for _, n := range e.acceptNames() {
				if n == "superd" || strings.HasPrefix(n, "floor") {
					continue
				}
				if p := e.accept[n][c]; p.ok() && p.rate() > best {
					best, bestName = p.rate(), n
				}
			}
			if bestName != "" {
				rows = append(rows, [3]string{fmt.Sprintf("accept c=%d: conn/s ≥ every peer", c),
					fmt.Sprintf("superd %.0f, best peer %s %.0f (%.2f ×)", a.rate(), bestName, best, a.rate()/best), status(a.rate() >= best)})
			}
		}
		if a, f := sup[64], e.accept["floor"][64]; a.ok() && f.ok() {
			r := ratio(a.p99ms(), f.p99ms())
			rows = append(rows, [3]string{"accept c=64: p99 ≤ 1.1 × floor",
				fmt.Sprintf("%.2f × (%.2f ms vs %.2f ms)", r, a.p99ms(), f.p99ms()), status(r <= 1.1)})
		}
	}
	if a := sup[128]; a.ok() && e.multicore {
		tcp, xin := e.accept["tcpserver"][128], e.accept["xinetd"][128]
		if tcp.ok() {
			r := a.rate() / tcp.rate()
			rows = append(rows, [3]string{"c=128: ≥ 2 × tcpserver", fmt.Sprintf("%.2f ×", r), status(r >= 2)})
		}
		if xin.ok() {
			r := a.rate() / xin.rate()
			rows = append(rows, [3]string{"c=128: ≥ 5 × xinetd", fmt.Sprintf("%.2f ×", r), status(r >= 5)})
		}
		rows = append(rows, [3]string{"c=128: ≥ 20k conn/s", fmt.Sprintf("%.0f on %d cores", a.rate(), e.cores), status(a.rate() >= 20000)})
		rows = append(rows, [3]string{"c=128: p99 ≤ 10 ms", fmt.Sprintf("%.2f ms", a.p99ms()), status(a.p99ms() <= 10)})
	} else {
		rows = append(rows, [3]string{"16 cores, c=128: ≥ 2 × tcpserver, ≥ 5 × xinetd, ≥ 20k conn/s, p99 ≤ 10 ms",
			fmt.Sprintf("not measured: %d cores here (make bench-multicore on a 16-core machine)", e.cores), "–"})
	}
	if st := e.scale["superd"]; st != nil {
		big := 0
		for _, n := range e.sizes {
			if x := st[n]; x != nil && len(x.rate) > 0 {
				big = max(big, n)
			}
		}
		if x, one := st[big], st[1]; x != nil && one != nil && big > 1 {
			r := median(x.rate) / median(one.rate)
			rows = append(rows, [3]string{fmt.Sprintf("%d services: conn/s ≥ 0.9 × one service", big), fmt.Sprintf("%.2f ×", r), status(r >= 0.9)})
		}
		if x := st[big]; x != nil {
			rows = append(rows, [3]string{fmt.Sprintf("%d services: startup ≤ 0.5 s", big), fmt.Sprintf("%.3f s", median(x.startup)), status(median(x.startup) <= 0.5)})
			rows = append(rows, [3]string{fmt.Sprintf("%d services: RSS ≤ 20 MB", big), fmt.Sprintf("%.1f MiB", median(x.rss)/1024), status(median(x.rss)*1024 <= 20e6)})
		}
	}
	for _, r := range e.idleRes {
		if r.name != "superd" || r.err != "" || !strings.HasPrefix(r.config, "configs/demo.yaml") {
			continue
		}
		rows = append(rows, [3]string{"idle, demo config: RSS ≤ 10 MB", fmt.Sprintf("%.1f MiB (%.1f MB; anonymous %.1f MiB)", float64(r.rssKB)/1024, float64(r.rssKB)*1024/1e6, float64(r.anonKB)/1024), status(float64(r.rssKB)*1024 <= 10e6)})
		st := status(r.switches <= 4)
		if e.idle < 120*time.Second && r.switches <= 4 {
			st = fmt.Sprintf("met over %s (target: 120 s; -idle=120s)", e.idle)
		}
		rows = append(rows, [3]string{"idle: ≤ 4 context switches in 120 s, all threads", fmt.Sprintf("%d in %s (%d threads)", r.switches, e.idle, r.threads), st})
	}
	if x, ok := e.rearmEstimate(); ok {
		rows = append(rows, [3]string{"wait mode: re-arm ≤ 1 ms (median)", fmt.Sprintf("≈ %.3f ms (estimate, see wait-mode table)", x), status(x <= 1)})
	}
	return rows
}

// svg is a grouped bar chart of accept-mode conn/s as a ratio to the floor,
// one group per concurrency level, one bar per server.
func (e *bench) svg() string {
	names := e.acceptNames()
	if len(names) == 0 || len(e.accept["floor"]) == 0 {
		return ""
	}
	const (
		W, H                  = 820, 420
		left, right, top, bot = 60, 200, 40, 50
	)
	// Fixed colours, so a server looks the same in every chart.
	colorOf := func(name string) string {
		switch {
		case name == "floor":
			return "#7f7f7f"
		case name == "floor-setsid":
			return "#c7c7c7"
		case strings.HasPrefix(name, "floor-reuseport"):
			return "#bcbd22"
		case name == "superd":
			return "#1f77b4"
		case name == "tcpserver":
			return "#ff7f0e"
		case name == "xinetd":
			return "#9467bd"
		case name == "openbsd-inetd":
			return "#d62728"
		case name == "systemd-socket-activate":
			return "#8c564b"
		}
		return "#e377c2"
	}
	ymax := 1.2
	for _, n := range names {
		for _, c := range e.conc {
			if a := e.accept[n][c]; a.ok() {
				ymax = math.Max(ymax, ratio(a.rate(), e.floorRate(c)))
			}
		}
	}
	ymax = math.Ceil((ymax+0.05)*5) / 5
	plotW, plotH := float64(W-left-right), float64(H-top-bot)
	y := func(v float64) float64 { return float64(top) + plotH*(1-v/ymax) }
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	w(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	w(`<text x="%d" y="22" font-size="15" font-weight="bold">Accept mode: connections/s as a ratio to the C floor (medians of %d rounds, %d cores)</text>`+"\n", left, e.rounds, runtime.NumCPU())
	for v := 0.0; v <= ymax+1e-9; v += 0.2 {
		w(`<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(v), float64(left)+plotW, y(v))
		w(`<text x="%d" y="%.1f" text-anchor="end">%.1f</text>`+"\n", left-6, y(v)+4, v)
	}
	w(`<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000" stroke-dasharray="6,4"/>`+"\n", left, y(1), float64(left)+plotW, y(1))
	groupW := plotW / float64(len(e.conc))
	barW := groupW * 0.8 / float64(len(names))
	for gi, c := range e.conc {
		gx := float64(left) + groupW*float64(gi) + groupW*0.1
		for si, n := range names {
			a := e.accept[n][c]
			if !a.ok() {
				continue
			}
			r := ratio(a.rate(), e.floorRate(c))
			if math.IsNaN(r) {
				continue
			}
			x := gx + barW*float64(si)
			w(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s c=%d: %.0f conn/s, %.2f × floor</title></rect>`+"\n",
				x, y(r), barW-2, y(0)-y(r), colorOf(n), n, c, a.rate(), r)
			w(`<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%.2f</text>`+"\n", x+(barW-2)/2, y(r)-3, r)
		}
		w(`<text x="%.1f" y="%d" text-anchor="middle">c=%d</text>`+"\n", gx+groupW*0.4, H-bot+18, c)
	}
	w(`<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000"/>`+"\n", left, y(0), float64(left)+plotW, y(0))
	w(`<text x="%.1f" y="%d" text-anchor="middle">concurrent clients</text>`+"\n", float64(left)+plotW/2, H-8)
	for si, n := range names {
		ly := top + 10 + si*20
		w(`<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`+"\n", W-right+15, ly, colorOf(n))
		w(`<text x="%d" y="%d">%s</text>`+"\n", W-right+32, ly+10, n)
	}
	w("</svg>\n")
	return b.String()
}

// spread is (max − min) / median of xs.
func spread(xs []float64) float64 {
	if len(xs) == 0 || median(xs) == 0 {
		return 0
	}
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return (hi - lo) / median(xs)
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
