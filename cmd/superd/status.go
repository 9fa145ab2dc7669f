package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/superd/superd/pkg/server"
)

// version and commit are set at build time with -ldflags -X; commit falls
// back to the VCS stamp Go records.
var (
	version = "dev"
	commit  = ""
)

func versionString() string { return version }

func commitString() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "superd %s (commit %s, %s)\n", version, commitString(), runtime.Version())
}

// statusCmd asks a running superd's admin listener for its services.
func statusCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9750", "admin listener `HOST:PORT`")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + *addr + "/status")
	if err != nil {
		return runtimeError{fmt.Errorf("is superd running? %w", err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return runtimeError{err}
	}
	if resp.StatusCode != http.StatusOK {
		return runtimeError{fmt.Errorf("%s/status: %s: %s", *addr, resp.Status, strings.TrimSpace(string(body)))}
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var st struct {
		Services []server.ServiceStatus `json:"services"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return runtimeError{fmt.Errorf("bad /status answer: %w", err)}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tMODE\tSOCKETS\tSTATE\tACTIVE\tACTIVATIONS")
	for _, s := range st.Services {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", s.Name, s.Mode, strings.Join(s.Sockets, ","), s.State, s.Instances, s.Activations)
	}
	return tw.Flush()
}
