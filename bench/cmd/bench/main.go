// Command bench measures superd against a minimal C accept+spawn loop (the
// floor) and the super-servers it replaces — xinetd, openbsd-inetd,
// tcpserver (ucspi-tcp) and systemd-socket-activate — on loopback, and
// writes a Markdown report and an SVG chart. bench/README.md says how to run
// it and what every figure means; `make bench` is the usual entry point.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// bench is one run of the driver: its settings and what it measured.
type bench struct {
	root, build, work, out string
	superd, responder      string
	loadgen                string
	ssaPath                string
	superdLog              string

	cores     int
	multicore bool
	kit       bool // -kit: peers from bench/.peers/kit first
	threads   int
	rounds    int
	conc      []int
	dur       time.Duration
	waitDur   time.Duration
	scaleDur  time.Duration
	scaleConc int
	idle      time.Duration
	sizes     []int
	phases    map[string]bool

	nextPort  int
	scalePort int
	deadline  time.Time
	started   time.Time
	args      []string
	loadStart string

	all     []*server
	servers []*server // installed and selected, report order
	failed  map[string]string

	accept  map[string]map[int]*agg
	mem     map[string]*memStat
	wait    map[string]map[string]*agg
	idleRes []idleResult
	scale   map[string]map[int]*scaleStat
	notes   []string
	skipped []string
}

type memStat struct{ idle, peak []float64 } // KiB

type idleResult struct {
	name, config string
	threads      int
	switches     int64
	rssKB        int64
	anonKB       int64
	err          string
}

type scaleStat struct {
	startup, rss, rate []float64 // s, KiB, conn/s
	errors             int64
}

var interrupted atomic.Bool

func main() {
	e := &bench{
		accept: map[string]map[int]*agg{},
		mem:    map[string]*memStat{},
		wait:   map[string]map[string]*agg{},
		scale:  map[string]map[int]*scaleStat{},
		failed: map[string]string{},
	}
	mode := flag.String("mode", "2core", "`2core` (concurrency 1, 8, 64) or multicore (adds 128, more load-generator threads, a SO_REUSEPORT floor)")
	flag.IntVar(&e.cores, "cores", 0, "cores of the machine under test (default: all online); >2 implies -mode=multicore")
	flag.IntVar(&e.rounds, "rounds", 3, "interleaved rounds; the report shows medians")
	concFlag := flag.String("conc", "", "concurrency levels (default 1,8,64; multicore 1,8,64,128)")
	flag.DurationVar(&e.dur, "dur", 3*time.Second, "load per server and concurrency level, accept mode")
	flag.DurationVar(&e.waitDur, "wait-dur", 2*time.Second, "load per server and protocol, wait mode")
	flag.DurationVar(&e.scaleDur, "scale-dur", 2*time.Second, "load per server and size, scale mode")
	flag.IntVar(&e.scaleConc, "scale-conc", 8, "concurrency in scale mode")
	flag.DurationVar(&e.idle, "idle", 120*time.Second, "idle window for context switches (issue 7 asks for 120s)")
	sizesFlag := flag.String("scale-sizes", "1,1000,10000", "configured services in scale mode")
	scaleOnly := flag.Bool("scale", false, "run only the scale mode (same as -only=scale)")
	only := flag.String("only", "accept,wait,idle,scale", "phases to run: accept, wait, idle, scale")
	prepare := flag.Bool("prepare", false, "build the C programs into bench/.build and stop (make bench-kit)")
	flag.BoolVar(&e.kit, "kit", false, "run the peers from bench/.peers/kit (make bench-kit) even where they are installed")
	serversFlag := flag.String("servers", "", "servers to run (default: every one installed); floor always runs")
	flag.IntVar(&e.threads, "threads", 0, "load-generator threads (default 1; multicore: cores/4)")
	flag.StringVar(&e.superdLog, "superd-log", "info", "superd's log level (info, its default, logs two lines per connection)")
	flag.StringVar(&e.superd, "superd", "bin/superd", "the superd binary (make build)")
	flag.StringVar(&e.out, "out", "bench/results", "directory for latest.md and latest.svg")
	flag.IntVar(&e.nextPort, "port", 20000, "first loopback port for servers (below the ephemeral range)")
	flag.IntVar(&e.scalePort, "scale-port", 22000, "first loopback port of scale mode's services")
	budget := flag.Duration("budget", 9*time.Minute+30*time.Second, "stop starting measurements after this long; what is left is reported as skipped")
	flag.Parse()
	e.args = os.Args[1:]
	e.loadStart = loadAvg()
	e.started = time.Now()
	e.deadline = e.started.Add(*budget)

	if err := e.setup(*mode, *concFlag, *sizesFlag, *only, *scaleOnly, *serversFlag); err != nil {
		fatalf("%v", err)
	}
	if *prepare {
		logf("built %s", e.build)
		return
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		interrupted.Store(true)
		warnf("%v: stopping every server", s)
		stopLoadgen()
		stopAll()
		os.Exit(130)
	}()

	if e.phases["accept"] {
		e.runAccept()
	}
	if e.phases["wait"] {
		e.runWait()
	}
	if e.phases["idle"] {
		e.runIdle()
	}
	if e.phases["scale"] {
		e.runScale()
	}
	stopAll()

	md := e.markdown()
	svg := e.svg()
	if err := os.MkdirAll(e.out, 0o755); err != nil {
		fatalf("%v", err)
	}
	if err := os.WriteFile(filepath.Join(e.out, "latest.md"), []byte(md), 0o644); err != nil {
		fatalf("%v", err)
	}
	if svg != "" {
		if err := os.WriteFile(filepath.Join(e.out, "latest.svg"), []byte(svg), 0o644); err != nil {
			fatalf("%v", err)
		}
	}
	fmt.Println(md)
	logf("wrote %s (and latest.svg) in %s", filepath.Join(e.out, "latest.md"), time.Since(e.started).Round(time.Second))
}

// setup resolves paths, builds the C programs, picks the servers and raises
// RLIMIT_NOFILE for the servers it will start.
func (e *bench) setup(mode, concFlag, sizesFlag, only string, scaleOnly bool, serversFlag string) error {
	var err error
	if e.root, err = os.Getwd(); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(e.root, "bench", "loadgen.c")); err != nil {
		return fmt.Errorf("run from the repository root (bench/loadgen.c not found)")
	}
	if e.cores <= 0 {
		e.cores = runtime.NumCPU()
	}
	switch mode {
	case "2core":
		e.multicore = e.cores > 2
	case "multicore":
		e.multicore = true
	default:
		return fmt.Errorf("-mode: want 2core or multicore, not %q", mode)
	}
	if e.threads <= 0 {
		e.threads = 1
		if e.multicore {
			e.threads = max(1, e.cores/4)
		}
	}
	if concFlag == "" {
		concFlag = "1,8,64"
		if e.multicore {
			concFlag = "1,8,64,128"
		}
	}
	if e.conc, err = intList(concFlag); err != nil {
		return fmt.Errorf("-conc: %w", err)
	}
	if e.sizes, err = intList(sizesFlag); err != nil {
		return fmt.Errorf("-scale-sizes: %w", err)
	}
	if e.rounds < 1 || e.rounds > 50 {
		return fmt.Errorf("-rounds: 1 to 50")
	}
	for _, d := range []time.Duration{e.dur, e.waitDur, e.scaleDur} {
		if d < 200*time.Millisecond || d > 10*time.Minute {
			return fmt.Errorf("durations: 200ms to 10m")
		}
	}
	if e.idle < time.Second || e.idle > 30*time.Minute {
		return fmt.Errorf("-idle: 1s to 30m")
	}
	maxSize := 0
	for _, n := range e.sizes {
		maxSize = max(maxSize, n)
	}
	if e.nextPort < 1024 || e.nextPort+2000 > e.scalePort {
		return fmt.Errorf("-port: leave 2000 ports between -port and -scale-port")
	}
	if e.scalePort+maxSize > 65535 {
		return fmt.Errorf("-scale-port: %d services do not fit above %d", maxSize, e.scalePort)
	}
	e.phases = map[string]bool{}
	if scaleOnly {
		only = "scale"
	}
	for _, p := range strings.Split(only, ",") {
		switch p = strings.TrimSpace(p); p {
		case "accept", "wait", "idle", "scale":
			e.phases[p] = true
		default:
			return fmt.Errorf("-only: unknown phase %q", p)
		}
	}

	if !filepath.IsAbs(e.superd) {
		e.superd = filepath.Join(e.root, e.superd)
	}
	if _, err := os.Stat(e.superd); err != nil {
		return fmt.Errorf("%s: %w (make build first)", e.superd, err)
	}
	e.build = filepath.Join(e.root, "bench", ".build")
	e.work = filepath.Join(e.root, "bench", ".work")
	if !filepath.IsAbs(e.out) {
		e.out = filepath.Join(e.root, e.out)
	}
	if err := os.RemoveAll(e.work); err != nil {
		return err
	}
	for _, d := range []string{e.build, e.work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for _, prog := range []string{"responder", "floor", "loadgen"} {
		if err := e.compile(prog); err != nil {
			return err
		}
	}
	e.responder = filepath.Join(e.build, "responder")
	e.loadgen = filepath.Join(e.build, "loadgen")

	e.all = e.knownServers()
	want := map[string]bool{}
	if serversFlag != "" {
		for _, n := range strings.Split(serversFlag, ",") {
			want[strings.TrimSpace(n)] = true
		}
	}
	for _, s := range e.all {
		if s.path == "" {
			e.notes = append(e.notes, fmt.Sprintf("%s is not installed here (make bench-deps): left out.", s.name))
			continue
		}
		if len(want) > 0 && !want[s.name] && !strings.HasPrefix(s.name, "floor") {
			continue
		}
		e.servers = append(e.servers, s)
	}

	// 10,000 sockets need more descriptors than a default soft limit. The
	// driver raises its own limit with setrlimit, so the servers it starts
	// inherit it (Go gives children the original limit back only when the
	// program never called setrlimit itself).
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		const want = 1 << 16
		if lim.Max < want && os.Geteuid() == 0 {
			lim.Max = want
		}
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			// No CAP_SYS_RESOURCE (a container): the hard limit stays.
			syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
			lim.Cur = lim.Max
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				warnf("cannot raise RLIMIT_NOFILE: %v", err)
			}
		}
		if lim.Cur < uint64(maxSize)+256 {
			e.notes = append(e.notes, fmt.Sprintf("RLIMIT_NOFILE is %d: too low for %d services.", lim.Cur, maxSize))
		}
	}
	logf("%d cores (%s), servers: %s", e.cores, cpuModel(), e.serverNames())
	return nil
}

// compile builds bench/NAME.c into bench/.build/NAME, static, when the
// source is newer than the binary.
func (e *bench) compile(name string) error {
	src := filepath.Join(e.root, "bench", name+".c")
	bin := filepath.Join(e.build, name)
	ss, err := os.Stat(src)
	if err != nil {
		return err
	}
	if bs, err := os.Stat(bin); err == nil && (bs.ModTime().After(ss.ModTime()) || e.kit) {
		// Up to date, or carried from make bench-kit (a copy's times
		// say nothing).
		return nil
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "gcc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		if _, err := os.Stat(bin); err == nil {
			// A machine without a compiler, given the programs built
			// elsewhere (make bench-kit): whatever their times say.
			return nil
		}
		return fmt.Errorf("%s: no %s to build it (make bench-deps, or carry bench/.build from make bench-kit)", bin, cc)
	}
	args := []string{"-O2", "-static", "-Wall", "-o", bin, src, "-lpthread"}
	if name == "responder" && (runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64") {
		// No C library at all: see bench/responder.c.
		args = []string{"-O2", "-static", "-nostdlib", "-ffreestanding", "-fno-stack-protector", "-fno-builtin", "-Wall", "-o", bin, src}
	}
	out, err := exec.Command(cc, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", cc, src, err, out)
	}
	return nil
}

func (e *bench) serverNames() string {
	var n []string
	for _, s := range e.servers {
		n = append(n, s.name)
	}
	return strings.Join(n, ", ")
}

// port hands out a fresh free port for one server run (never reused in a
// run, so no server meets its predecessor's TIME_WAIT connections).
func (e *bench) port() (int, error) {
	for tries := 0; tries < 500; tries++ {
		p := e.nextPort
		e.nextPort++
		if e.nextPort >= e.scalePort {
			return 0, fmt.Errorf("out of ports below -scale-port %d", e.scalePort)
		}
		free, err := portsFree(p, 1)
		if err != nil {
			return 0, err
		}
		if free {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free port found")
}

// overBudget says whether the time budget is spent; it records what is
// skipped.
func (e *bench) overBudget(what string) bool {
	if interrupted.Load() {
		return true
	}
	if time.Now().Before(e.deadline) {
		return false
	}
	e.skipped = append(e.skipped, what)
	return true
}

// serve starts s serving w and waits until every port is bound. It returns
// the process and how long that took from exec.
func (e *bench) serve(s *server, w workload, timeout time.Duration) (*proc, time.Duration, error) {
	if interrupted.Load() {
		return nil, 0, fmt.Errorf("interrupted")
	}
	dir := filepath.Join(e.work, fmt.Sprintf("%s-%s-%d", s.name, w.kind(), w.ports[0]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, err
	}
	argv, err := s.argv(e, dir, w)
	if err != nil {
		return nil, 0, err
	}
	start := time.Now()
	p, err := startProc(s.name, argv, s.env, filepath.Join(dir, "output.log"))
	if err != nil {
		return nil, 0, err
	}
	took, err := waitBound(p, w.proto, w.ports, start, timeout)
	if err != nil {
		p.stop(3 * time.Second)
		return nil, 0, err
	}
	return p, took, nil
}

// rotate is servers in the order for round r: each round starts one later,
// so no server always runs first (or right after the same neighbour).
func rotate(ss []*server, r int) []*server {
	out := make([]*server, 0, len(ss))
	for i := range ss {
		out = append(out, ss[(i+r)%len(ss)])
	}
	return out
}

func (e *bench) runAccept() {
	logf("accept mode: %d rounds x %d servers x c=%v, %s each", e.rounds, len(e.servers), e.conc, e.dur)
	for r := 0; r < e.rounds; r++ {
		for _, s := range rotate(e.servers, r) {
			if !s.serves("accept") || e.failed[s.name] != "" {
				continue
			}
			if e.overBudget(fmt.Sprintf("accept round %d: %s", r+1, s.name)) {
				continue
			}
			if err := e.acceptOnce(s); err != nil {
				e.failed[s.name] = err.Error()
				warnf("%s: %v", s.name, err)
			}
		}
	}
}

func (e *bench) acceptOnce(s *server) error {
	port, err := e.port()
	if err != nil {
		return err
	}
	w := workload{mode: "accept", proto: "tcp", ports: []int{port}}
	p, _, err := e.serve(s, w, 10*time.Second)
	if err != nil {
		return err
	}
	defer p.stop(5 * time.Second)
	time.Sleep(300 * time.Millisecond)
	ms := e.mem[s.name]
	if ms == nil {
		ms = &memStat{}
		e.mem[s.name] = ms
	}
	if rss, _, err := memKB(p.pid()); err == nil {
		ms.idle = append(ms.idle, float64(rss))
	}
	for _, c := range e.conc {
		cpu0, _ := cpuTime(p.pid())
		res, err := e.runLoad(port, c, false, e.dur)
		if err != nil {
			return err
		}
		cpu1, cerr := cpuTime(p.pid())
		if p.exited() {
			return fmt.Errorf("exited under load: %v\n%s", p.err, p.logTail())
		}
		m := e.accept[s.name]
		if m == nil {
			m = map[int]*agg{}
			e.accept[s.name] = m
		}
		if m[c] == nil {
			m[c] = &agg{}
		}
		m[c].add(res)
		// floor-reuseport's workers are processes of their own: its
		// parent's CPU says nothing.
		if cerr == nil && !strings.HasPrefix(s.name, "floor-reuseport") {
			m[c].addCPU(cpu1-cpu0, res)
		}
		logf("  %-26s c=%-4d %8.0f conn/s  p50 %7.2f ms  p99 %7.2f ms  CPU %5.1f µs/conn  errors %d timeouts %d",
			s.name, c, res.ConnPerS, res.P50/1000, res.P99/1000, float64((cpu1-cpu0).Microseconds())/float64(max(res.Completed, 1)), res.Errors, res.Timeouts)
	}
	if _, hwm, err := memKB(p.pid()); err == nil {
		ms.peak = append(ms.peak, float64(hwm))
	}
	return nil
}

func (e *bench) runWait() {
	logf("wait mode: %d rounds, TCP and UDP, c=1 back to back, %s each", e.rounds, e.waitDur)
	for r := 0; r < e.rounds; r++ {
		for _, kind := range []string{"tcp-wait", "udp-wait"} {
			for _, s := range rotate(e.servers, r) {
				key := s.name + "/" + kind
				if !s.serves(kind) || e.failed[key] != "" {
					continue
				}
				if e.overBudget(fmt.Sprintf("wait round %d: %s %s", r+1, s.name, kind)) {
					continue
				}
				if err := e.waitOnce(s, kind); err != nil {
					e.failed[key] = err.Error()
					warnf("%s %s: %v", s.name, kind, err)
				}
			}
		}
	}
}

func (e *bench) waitOnce(s *server, kind string) error {
	port, err := e.port()
	if err != nil {
		return err
	}
	proto := strings.TrimSuffix(kind, "-wait")
	w := workload{mode: "wait", proto: proto, ports: []int{port}}
	p, _, err := e.serve(s, w, 10*time.Second)
	if err != nil {
		return err
	}
	defer p.stop(5 * time.Second)
	time.Sleep(200 * time.Millisecond)
	m := e.wait[s.name]
	if m == nil {
		m = map[string]*agg{}
		e.wait[s.name] = m
	}
	// Back to back: the next request leaves as soon as the previous reply
	// is in, so it waits for the re-arm. Spaced: 2 ms after each reply,
	// when every server has re-armed: the latency of an activation alone.
	for _, run := range []struct {
		name string
		gap  time.Duration
	}{{"b2b", 0}, {"gap", waitGap}} {
		res, err := e.runLoadOpts(port, 1, proto == "udp", e.waitDur, run.gap)
		if err != nil {
			return err
		}
		key := kind + "/" + run.name
		if m[key] == nil {
			m[key] = &agg{}
		}
		m[key].add(res)
		logf("  %-26s %-8s %-3s %7.0f /s  p50 %7.3f ms  p99 %7.3f ms  errors %d timeouts %d",
			s.name, kind, run.name, res.ConnPerS, res.P50/1000, res.P99/1000, res.Errors, res.Timeouts)
	}
	return nil
}

// waitGap is the pause after each reply in spaced wait-mode runs.
const waitGap = 2 * time.Millisecond

// runIdle starts every server at once, each on its own port (superd also
// with the demo configuration), lets them settle, and counts the context
// switches of all their threads over the idle window.
func (e *bench) runIdle() {
	if e.overBudget("idle") {
		return
	}
	logf("idle: every server at once, context switches over %s", e.idle)
	type entry struct {
		name, config string
		p            *proc
	}
	var entries []entry
	defer func() {
		for _, en := range entries {
			en.p.stop(5 * time.Second)
		}
	}()
	if p, err := e.serveDemo(); err != nil {
		e.idleRes = append(e.idleRes, idleResult{name: "superd", config: "demo", err: err.Error()})
	} else {
		entries = append(entries, entry{"superd", "configs/demo.yaml (ports moved)", p})
	}
	for _, s := range e.servers {
		if !s.serves("accept") || strings.HasPrefix(s.name, "floor-") {
			continue
		}
		port, err := e.port()
		if err == nil {
			var p *proc
			p, _, err = e.serve(s, workload{mode: "accept", proto: "tcp", ports: []int{port}}, 10*time.Second)
			if err == nil {
				entries = append(entries, entry{s.name, "one accept-mode service", p})
				continue
			}
		}
		e.idleRes = append(e.idleRes, idleResult{name: s.name, config: "one accept-mode service", err: err.Error()})
	}
	// Let start-up work (the Go runtime's first GC, lazy initialisation)
	// finish before the window opens.
	time.Sleep(3 * time.Second)
	before := make([]int64, len(entries))
	for i, en := range entries {
		before[i], _, _ = ctxSwitches(en.p.pid())
	}
	time.Sleep(e.idle)
	for i, en := range entries {
		r := idleResult{name: en.name, config: en.config}
		after, threads, err := ctxSwitches(en.p.pid())
		if err != nil {
			r.err = err.Error()
		}
		r.switches, r.threads = after-before[i], threads
		r.rssKB, _, r.anonKB, _ = memDetailKB(en.p.pid())
		e.idleRes = append(e.idleRes, r)
		logf("  %-26s %-32s %d threads, %d context switches, RSS %.1f MiB (anonymous %.1f MiB)", r.name, r.config, r.threads, r.switches, float64(r.rssKB)/1024, float64(r.anonKB)/1024)
	}
}

// serveDemo starts superd with configs/demo.yaml, its ports moved into the
// benchmark's range so it cannot meet a `make run` of someone else.
func (e *bench) serveDemo() (*proc, error) {
	b, err := os.ReadFile(filepath.Join(e.root, "configs", "demo.yaml"))
	if err != nil {
		return nil, err
	}
	conf := string(b)
	var tcp, udp []int
	for _, old := range []string{"7001", "7002", "7080", "9750"} {
		port, err := e.port()
		if err != nil {
			return nil, err
		}
		if !strings.Contains(conf, ":"+old) {
			return nil, fmt.Errorf("configs/demo.yaml no longer uses port %s; update bench/cmd/bench", old)
		}
		conf = strings.ReplaceAll(conf, ":"+old, ":"+strconv.Itoa(port))
		if old == "7002" {
			udp = append(udp, port)
		} else {
			tcp = append(tcp, port)
		}
	}
	dir := filepath.Join(e.work, "superd-demo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	start := time.Now()
	p, err := startProc("superd-demo", []string{e.superd, "run", "-c", path}, nil, filepath.Join(dir, "output.log"))
	if err != nil {
		return nil, err
	}
	_, err = waitBound(p, "tcp", tcp, start, 10*time.Second)
	if err == nil {
		_, err = waitBound(p, "udp", udp, start, 10*time.Second)
	}
	if err != nil {
		p.stop(3 * time.Second)
		return nil, err
	}
	return p, nil
}

// runScale measures startup, RSS and throughput on one service with 1,
// 1,000 and 10,000 configured services, for the servers that serve many
// services from one process and are known to scale that far (superd,
// xinetd).
func (e *bench) runScale() {
	// The floor runs along as a reference: one socket, but holding as many
	// other open fds as the servers hold sockets, which is what each spawn
	// pays for in the kernel whatever the server does.
	var ss []*server
	for _, s := range e.servers {
		if s.name == "superd" || s.name == "xinetd" || s.name == "floor" {
			ss = append(ss, s)
		}
	}
	logf("scale: %v services, %d rounds, c=%d for %s on one of them", e.sizes, e.rounds, e.scaleConc, e.scaleDur)
	for _, n := range e.sizes {
		free, err := portsFree(e.scalePort, n)
		if err != nil || !free {
			e.notes = append(e.notes, fmt.Sprintf("scale: ports %d-%d are not all free; %d services skipped.", e.scalePort, e.scalePort+n-1, n))
			continue
		}
		ports := make([]int, n)
		for i := range ports {
			ports[i] = e.scalePort + i
		}
		for r := 0; r < e.rounds; r++ {
			for _, s := range rotate(ss, r) {
				key := fmt.Sprintf("%s/scale-%d", s.name, n)
				if e.failed[key] != "" || e.overBudget(fmt.Sprintf("scale round %d: %s with %d services", r+1, s.name, n)) {
					continue
				}
				if err := e.scaleOnce(s, ports); err != nil {
					e.failed[key] = err.Error()
					warnf("%s with %d services: %v", s.name, n, err)
				}
			}
		}
	}
}

// scaleSettle is how long after listening scale mode reads a server's RSS:
// superd goes idle a second after the loop starts, which at 10,000
// services is some 50 ms after the last socket listens.
const scaleSettle = 2 * time.Second

func (e *bench) scaleOnce(s *server, ports []int) error {
	n := len(ports)
	w := workload{mode: "accept", proto: "tcp", ports: ports}
	if s.name == "floor" {
		w = workload{mode: "accept", proto: "tcp", ports: ports[n-1:], extraFDs: n - 1}
	}
	p, took, err := e.serve(s, w, 60*time.Second)
	if err != nil {
		return err
	}
	defer p.stop(10 * time.Second)
	// What a host holding this many services sees once the server has
	// settled: superd hands back its start-up memory and drops its
	// mappings of its executable a second after its last event. Every
	// server gets the same wait.
	time.Sleep(scaleSettle)
	st := e.scale[s.name]
	if st == nil {
		st = map[int]*scaleStat{}
		e.scale[s.name] = st
	}
	if st[n] == nil {
		st[n] = &scaleStat{}
	}
	rss, _, _ := memKB(p.pid())
	// The last service: a server that scans its services in order finds
	// it last.
	res, err := e.runLoad(ports[n-1], e.scaleConc, false, e.scaleDur)
	if err != nil {
		return err
	}
	st[n].startup = append(st[n].startup, took.Seconds())
	st[n].rss = append(st[n].rss, float64(rss))
	st[n].rate = append(st[n].rate, res.ConnPerS)
	st[n].errors += res.Errors + res.Timeouts
	logf("  %-8s %6d services: listening after %6.3f s, RSS %6.1f MiB, %6.0f conn/s (c=%d), errors %d",
		s.name, n, took.Seconds(), float64(rss)/1024, res.ConnPerS, e.scaleConc, res.Errors+res.Timeouts)
	return nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 100000 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
}

func warnf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: warning: "+format+"\n", a...)
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
	stopAll()
	os.Exit(1)
}
