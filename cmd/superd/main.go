// Command superd is a super-server: it owns the listening sockets of a host's
// occasional services and starts a service's program only when a client
// arrives. See README.md and SPEC.md for the command line.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/superd/superd/pkg/config"
	"github.com/superd/superd/pkg/spawn"
)

// Exit codes (SPEC §1).
const (
	exitOK      = 0
	exitConfig  = 1 // invalid configuration or usage
	exitRuntime = 2 // runtime failure
)

func init() {
	// The main goroutine keeps the process's main thread to itself, so no
	// spawner runs there: a spawner gives its thread a private fd table,
	// and the main thread's table is the one /proc/PID/fd and other
	// processes see (pkg/server/spawner_linux.go).
	runtime.LockOSThread()
}

// defaultConfig is where `run` and `check` look without -c.
const defaultConfig = "/etc/superd/superd.yaml"

const usage = `usage:
  superd run [-c FILE]              serve, in the foreground
  superd check [-c FILE]            validate a configuration
  superd status [--addr HOST:PORT] [--json]
                                    show a running superd's services
  superd import [--root DIR] xinetd|inetd FILE
                                    convert an xinetd.conf or inetd.conf to superd YAML
                                    (--root: read FILE and what it names — includes,
                                    /etc/services, /etc/hosts.allow and hosts.deny —
                                    under DIR, as if DIR were /; a relative FILE too)
  superd version                    print version information
`

func main() {
	// The launcher must do nothing but launch: see package spawn.
	spawn.MaybeLaunch()
	if code, ran := maybeInit(os.Args[1:]); ran {
		os.Exit(code)
	}
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a command-line mistake: usage is printed, exit 1.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// errHelp is -h or --help after a command: usage on stdout, exit 0.
var errHelp = errors.New("help requested")

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitConfig
	}
	var err error
	switch args[0] {
	case "run":
		err = runCmd(args[1:], stderr)
	case "check":
		err = checkCmd(args[1:], stdout, stderr)
	case "status":
		err = statusCmd(args[1:], stdout)
	case "import":
		err = importCmd(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		if len(args) > 1 {
			err = usageError{fmt.Sprintf("unexpected argument %q", args[1])}
			if args[1] == "-h" || args[1] == "--help" {
				err = errHelp
			}
			break
		}
		printVersion(stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	return exitCode(err, stderr)
}

// exitCode reports err on stderr and maps it to SPEC §1's exit codes.
func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	var ce config.Errors
	var re runtimeError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "superd: %s\n%s", ue.msg, usage)
		return exitConfig
	case errors.As(err, &ce):
		for _, e := range ce {
			fmt.Fprintln(stderr, e.Error())
		}
		return exitConfig
	case errors.As(err, &re):
		fmt.Fprintln(stderr, "superd:", re.err)
		return exitRuntime
	}
	fmt.Fprintln(stderr, "superd:", err)
	return exitConfig
}

// runtimeError marks a failure of a running superd (exit 2), as opposed to
// a configuration or usage error (exit 1).
type runtimeError struct{ err error }

func (e runtimeError) Error() string { return e.err.Error() }
func (e runtimeError) Unwrap() error { return e.err }
