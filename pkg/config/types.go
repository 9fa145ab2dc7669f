package config

import (
	"net/netip"
	"syscall"
	"time"

	"github.com/superd/superd/pkg/listener"
)

// Config is a loaded, defaulted and validated configuration. It is immutable
// once Load returns it.
type Config struct {
	// File is the main configuration file it was loaded from.
	File     string
	Log      Log
	Admin    Admin
	Services []*Service // sorted by Name
}

// Log configures superd's own logging.
type Log struct {
	Level  string // debug | info | warn | error
	Format string // console | json
}

// Admin configures the admin HTTP listener.
type Admin struct {
	// Listen is HOST:PORT; empty disables the admin listener.
	Listen string
}

// Mode says how a service's sockets are served.
type Mode uint8

// Service modes.
const (
	// Accept starts one child per accepted connection.
	Accept Mode = iota + 1
	// Wait hands the listening sockets themselves to one child.
	Wait
)

// String returns the mode as the configuration spells it.
func (m Mode) String() string {
	switch m {
	case Accept:
		return "accept"
	case Wait:
		return "wait"
	}
	return "unknown"
}

// Pass says how sockets reach the child.
type Pass uint8

// Pass protocols.
const (
	// PassStdio makes the socket fd 0 and fd 1.
	PassStdio Pass = iota + 1
	// PassListenFDs passes the sockets from fd 3 on, as sd_listen_fds(3).
	PassListenFDs
)

// String returns the pass protocol as the configuration spells it.
func (p Pass) String() string {
	switch p {
	case PassStdio:
		return "stdio"
	case PassListenFDs:
		return "listen_fds"
	}
	return "unknown"
}

// Stderr says where a child's stderr goes.
type Stderr uint8

// Stderr destinations.
const (
	// StderrLog logs each line through superd.
	StderrLog Stderr = iota + 1
	// StderrSocket dups the connection onto fd 2.
	StderrSocket
	// StderrDiscard points fd 2 at /dev/null.
	StderrDiscard
)

// String returns the destination as the configuration spells it.
func (s Stderr) String() string {
	switch s {
	case StderrLog:
		return "log"
	case StderrSocket:
		return "socket"
	case StderrDiscard:
		return "discard"
	}
	return "unknown"
}

// Position is where something was written in a configuration file.
// (int32: every service holds one.)
type Position struct {
	File string
	Line int32
	Col  int32
}

// Socket is one listening address of a service with its options.
type Socket struct {
	Address listener.Address
	Options listener.Options
	// FDName is the name in LISTEN_FDNAMES (default: the service name).
	FDName string
}

// Credential is a resolved user, group and supplementary groups.
type Credential struct {
	User   string
	UID    uint32
	GID    uint32
	Groups []uint32
}

// Rlimit is one resource limit; a Value of Unlimited is RLIM_INFINITY.
type Rlimit struct {
	Resource int // unix.RLIMIT_*
	Name     string
	Value    uint64
}

// RateLimit bounds activations: more than Max in any window of Per pauses
// the service for Pause.
type RateLimit struct {
	Max   int
	Per   time.Duration
	Pause time.Duration
}

// TimeWindow is a daily local-time window, in minutes since midnight
// (0-1439): a minute t is inside it when Start <= t < End. End < Start
// means the window wraps past midnight; Start == End never occurs.
type TimeWindow struct {
	Start int
	End   int
}

// Service is one validated service.
type Service struct {
	Name        string
	Pos         Position // where the service's key was written
	Description string

	// Sockets are in listen order (the LISTEN_FDS order); never empty.
	Sockets []Socket

	// Exactly one of Exec, Internal, Redirect is set.
	Exec     []string // absolute path first, then arguments
	Argv0    string   // overrides argv[0]; empty means Exec[0]
	Internal string   // echo | discard | daytime | time | chargen
	Redirect string   // HOST:PORT

	// Mode, Pass and Stderr are always set; an internal or redirect
	// service has PassStdio and StderrLog, which mean nothing for it.
	// (Next to Disabled, and with Nice, PerSourcePrefix6 and Umask below,
	// they share one word: a configuration holds 10,000 services.)
	Disabled bool
	Mode     Mode
	Pass     Pass
	Stderr   Stderr
	Nice     int8 // 0 means leave as is; -20 to 19
	// PerSourcePrefix6 is the IPv6 prefix length max_per_source counts
	// sources by (default 64).
	PerSourcePrefix6 uint8
	Umask            uint16 // default 0o022

	// Credential is nil when no user is set (the child runs as superd),
	// and always for internal and redirect services. Its Groups may be
	// empty: the child then has no supplementary groups.
	Credential       *Credential
	WorkingDirectory string // default "/"
	// Env is the child's base environment: PATH, pass_env values, env map and
	// SUPERD_SERVICE, as "K=V", sorted; per-connection variables come on top.
	// Nil for internal and redirect services.
	Env     []string
	Rlimits []Rlimit // sorted by Name; empty: inherit superd's

	MaxDuration time.Duration // 0: none; always 0 in wait mode
	StopSignal  syscall.Signal
	StopTimeout time.Duration

	MaxInstances int        // 0: unlimited
	MaxPerSource int        // 0: unlimited; always 0 for exec services in wait mode
	RateLimit    *RateLimit // nil: none
	// Allow and Deny are masked prefixes, IPv4 ones never IPv4-mapped;
	// both empty for exec services in wait mode, which cannot enforce them.
	Allow       []netip.Prefix
	Deny        []netip.Prefix
	AccessTimes []TimeWindow // empty: any time
}

// DefaultPath is the only variable a child inherits without pass_env.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
