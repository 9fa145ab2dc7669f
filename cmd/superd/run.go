package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/superd/superd/pkg/config"
	"github.com/superd/superd/pkg/metrics"
	"github.com/superd/superd/pkg/notify"
	"github.com/superd/superd/pkg/server"
	"github.com/superd/superd/pkg/spawn"
)

func configFlag(fs *flag.FlagSet) *string {
	p := fs.String("c", defaultConfig, "configuration `FILE`")
	fs.StringVar(p, "config", defaultConfig, "configuration `FILE`")
	return p
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// configFromArgs parses a verb's -c flag and loads that configuration.
func configFromArgs(verb string, args []string) (string, *config.Config, error) {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	path := configFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return "", nil, err
	}
	cfg, err := loadConfig(*path)
	return *path, cfg, err
}

func loadConfig(path string) (*config.Config, error) {
	root := os.Geteuid() == 0
	return config.Load(path, config.Options{AsRoot: root, StrictModes: root})
}

// checkCmd validates a configuration without touching any socket. What a
// superd run by the same user would ignore, and a program it could not
// run, is a warning on stderr.
func checkCmd(args []string, stdout, stderr io.Writer) error {
	path, cfg, err := configFromArgs("check", args)
	if err != nil {
		return err
	}
	for _, note := range append(spawn.NotRootNotes(cfg), programNotes(cfg)...) {
		fmt.Fprintln(stderr, "warning:", note)
	}
	fmt.Fprintf(stdout, "%s: ok (%d services)\n", path, len(cfg.Services))
	return nil
}

// programNotes lists the enabled exec services whose program is missing
// here or not executable: a warning, not an error, since a configuration
// may be checked on another host than the one it is for. (Each spawn would
// fail, counted as spawn_error.)
func programNotes(cfg *config.Config) []string {
	var notes []string
	for _, svc := range cfg.Services {
		if len(svc.Exec) == 0 || svc.Disabled {
			continue
		}
		prog := svc.Exec[0]
		err := unix.Access(prog, unix.X_OK)
		if fi, serr := os.Stat(prog); err == nil && serr == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("not a regular file")
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s:%d:%d: services.%s.exec: %s cannot be run here: %v",
				svc.Pos.File, svc.Pos.Line, svc.Pos.Col, svc.Name, prog, err))
		}
	}
	return notes
}

// logConfigNotes logs what a superd that may not switch users ignores of cfg,
// and the programs it cannot run.
func logConfigNotes(log *zap.Logger, cfg *config.Config) {
	for _, note := range spawn.NotRootNotes(cfg) {
		log.Warn("configuration ignored", zap.String("note", note))
	}
	for _, note := range programNotes(cfg) {
		log.Warn("program cannot be run", zap.String("note", note))
	}
}

// newLogger builds superd's logger. No sampling (every activation line is
// wanted) and no buffering (a buffered writer runs a flush ticker, which
// would wake an idle superd).
func newLogger(c config.Log) (*zap.Logger, error) {
	var level zapcore.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, err
	}
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "time"
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if c.Format == "json" {
		enc = zapcore.NewJSONEncoder(ec)
	} else {
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(os.Stderr), level)
	return zap.New(core, zap.ErrorOutput(zapcore.Lock(os.Stderr))), nil
}

// runCmd serves in the foreground until SIGTERM or SIGINT.
func runCmd(args []string, stderr io.Writer) error {
	// Signals first, so a TERM that arrives while the configuration is
	// read or sockets are bound is not fatal: it is handled once superd
	// serves. An explicit list: with none, os/signal would also deliver
	// the runtime's SIGURG.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	initMayForward()

	cg := readCgroupMemory()
	mem := newIdleMemory(cg) // reads GOGC and GOMEMLIMIT before startupMemory changes them
	started := startupMemory(cg)
	path, cfg, err := configFromArgs("run", args)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer log.Sync()
	logConfigNotes(log, cfg)
	if err := spawn.CloseInheritedOnExec(); err != nil {
		return runtimeError{err}
	}

	// The binary to run on a live upgrade: the path this one was started
	// from, whatever file is there by then.
	exe, err := os.Executable()
	if err != nil {
		return runtimeError{err}
	}
	in, err := takeInherited()
	if err != nil {
		log.Warn("inherited sockets", zap.Error(err))
	}
	// The sockets superd is about to open, whose kernel memory the cgroup
	// will be charged (inherited ones are charged already).
	sockets := -len(in.inherited)
	for _, sc := range cfg.Services {
		sockets += len(sc.Sockets)
	}
	startupSockets(cg, max(sockets, 0))

	m := metrics.New(versionString())
	m.ReloadSuccessful.Set(1)
	m.ReloadSuccessSeconds.Set(float64(time.Now().UnixNano()) / 1e9)

	var adminLn net.Listener
	if cfg.Admin.Listen != "" {
		adminLn, err = in.adminFrom(cfg.Admin.Listen)
		if adminLn == nil && err == nil {
			adminLn, err = net.Listen("tcp", cfg.Admin.Listen)
		}
		if err != nil {
			return runtimeError{fmt.Errorf("admin listener: %w", err)}
		}
	}
	spawners, err := spawnerCount()
	if err != nil {
		return err
	}
	if mem.unmap, err = idleUnmap(); err != nil {
		return err
	}
	setMaxProcs(spawners)
	srv, err := server.New(cfg, server.Options{
		Logger: log, Metrics: m, Spawners: spawners,
		Inherited: in.inherited, Held: in.held,
		Idle: mem.set, IdleAfter: idleAfter,
	})
	if err != nil {
		return runtimeError{err}
	}
	var admin *http.Server
	if adminLn != nil {
		admin = &http.Server{Handler: touching(srv, m.Handler(srv)), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := admin.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin listener failed", zap.Error(err))
			}
		}()
		log.Info("admin listening", zap.String("addr", adminLn.Addr().String()))
	}

	// Parsing a large configuration leaves much garbage behind; give the
	// memory back now rather than whenever the scavenger gets to it.
	started()
	reserveThreads(runtime.GOMAXPROCS(0) + 4)
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run() }()
	notifier := notify.FromEnv()
	logNotify(log, notifier.Ready(fmt.Sprintf("serving %d services", len(cfg.Services))))
	in.signalReady(log, srv)

	up := &upgrader{log: log, srv: srv, exe: exe, admin: adminLn, notifySocket: notifier.Addr()}
	var handedOver *os.File // the freed pipe, once a new superd took over
	successor := 0          // its pid
	stopping := false
	for {
		select {
		case err := <-runErr:
			if admin != nil {
				admin.Close()
			}
			if handedOver != nil {
				handedOver.Close()
			}
			if err != nil {
				return runtimeError{err}
			}
			return nil
		case sig := <-sigs:
			switch {
			case handedOver != nil && (sig == syscall.SIGTERM || sig == syscall.SIGINT):
				// Meant for superd, which is the new process now (a
				// signal sent while the upgrade was under way lands
				// here).
				log.Info("passing the signal to the superd that took over", zap.String("signal", sig.String()), zap.Int("pid", successor))
				syscall.Kill(successor, sig.(syscall.Signal))
			case handedOver != nil || stopping:
				log.Info("signal ignored: stopping", zap.String("signal", sig.String()))
			case sig == syscall.SIGHUP:
				logNotify(log, notifier.Reloading())
				// An event for the loop first, so that the collector,
				// off while superd idles, is on while the new
				// configuration is parsed.
				srv.Ping(time.Second)
				if next := reload(log, m, srv, path, cfg); next != nil {
					cfg = next
				}
				debug.FreeOSMemory()
				logNotify(log, notifier.Ready(fmt.Sprintf("serving %d services", len(cfg.Services))))
			case sig == syscall.SIGUSR2:
				srv.Ping(time.Second) // the collector on, as for a reload
				freed, pid, err := up.start()
				if err != nil {
					log.Error("upgrade failed; this superd keeps serving", zap.Error(err))
					continue
				}
				handedOver, successor = freed, pid
				if admin != nil {
					admin.Close()
				}
				srv.Handover(func(keys []string) {
					for _, k := range keys {
						freed.WriteString(k + "\n")
					}
				})
			default:
				stopping = true
				log.Info("signal received; stopping", zap.String("signal", sig.String()))
				logNotify(log, notifier.Stopping())
				srv.Shutdown()
			}
		}
	}
}

// reload loads the configuration at path and applies it. An invalid one is
// logged error by error and changes nothing. It returns the configuration
// now running if it changed, else nil.
func reload(log *zap.Logger, m *metrics.Metrics, srv *server.Server, path string, running *config.Config) *config.Config {
	log.Info("reloading", zap.String("config", path))
	cfg, err := loadConfig(path)
	if err == nil {
		err = srv.Reload(cfg)
	}
	if err != nil {
		m.ReloadSuccessful.Set(0)
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				log.Error("reload refused: configuration error", zap.String("error", e.Error()))
			}
		} else {
			log.Error("reload failed", zap.Error(err))
		}
		log.Warn("the running configuration stays")
		return nil
	}
	m.ReloadSuccessful.Set(1)
	m.ReloadSuccessSeconds.Set(float64(time.Now().UnixNano()) / 1e9)
	logConfigNotes(log, cfg)
	if cfg.Log != running.Log || cfg.Admin != running.Admin {
		log.Warn("log and admin settings take effect at the next start, not on reload")
	}
	return cfg
}

// spawnerCount is how many forks may run at once: SUPERD_SPAWNERS, else one
// per CPU superd may use.
func spawnerCount() (int, error) {
	v := os.Getenv("SUPERD_SPAWNERS")
	if v == "" {
		return runtime.GOMAXPROCS(0), nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1024 {
		return 0, fmt.Errorf("SUPERD_SPAWNERS=%q: want a number of spawners from 1 to 1024", v)
	}
	return n, nil
}

// setMaxProcs gives the runtime one P (the right to run Go code) per CPU
// plus one for each thread that spends its time blocked in a system call:
// the loop in epoll_wait and each spawner in recvmsg or a fork. A thread
// blocked in a system call keeps its P; when no P is idle, the runtime's
// monitor takes them away every 20 µs and the thread must queue for one
// when it returns. With one spare P per blocking thread that never happens,
// and the monitor sleeps. Measured on 2 cores: +15 % connections/s at
// concurrency 1, +20-25 % at 8 and 64. An explicit
// GOMAXPROCS in the environment is left as it is.
//
// The spare Ps are capped at one per CPU: more spawners than CPUs mostly
// wait in forks, and the garbage collector's workers scale with GOMAXPROCS
// (a quarter of it). Setting GOMAXPROCS also ends the runtime's own
// updates of it from the cgroup's CPU limit; superd reads the limit once,
// at start.
func setMaxProcs(spawners int) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	cpus := runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(cpus + min(spawners, cpus) + 1)
}

// reserveThreads makes the Go runtime create n OS threads now and keep them
// idle for later. The runtime dies when it cannot create a thread it needs
// ("failed to create new OS thread"), and a full process table — exactly
// when fork fails and superd must keep serving — is when that happens. At
// most, superd's threads block in the loop's epoll_wait, in one fork per
// spawner (their threads exist already, locked to them) and in running
// goroutines (GOMAXPROCS), so with n threads in reserve it needs no new one
// later. Measured: under a pids cgroup at its
// limit, superd crashed in one run of two without this.
func reserveThreads(n int) {
	var locked sync.WaitGroup
	release := make(chan struct{})
	var done sync.WaitGroup
	for i := 0; i < n; i++ {
		locked.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			// A locked goroutine that blocks keeps its thread, so the
			// runtime starts another for everything else.
			runtime.LockOSThread()
			locked.Done()
			<-release
			// Unlocked before it ends, the thread goes back to the idle
			// pool instead of exiting.
			runtime.UnlockOSThread()
		}()
	}
	locked.Wait()
	close(release)
	done.Wait()
}

// logNotify logs a failed sd_notify: the service manager's problem is
// worth a line, never a stop.
func logNotify(log *zap.Logger, err error) {
	if err != nil {
		log.Warn("sd_notify failed", zap.Error(err))
	}
}
