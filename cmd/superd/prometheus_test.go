package main

// Monitoring tests: superd's /metrics after real traffic, counted exactly;
// the admin endpoints and `superd status` with a child in flight; promtool on
// the live exposition and on deploy/monitoring; and a real Prometheus server
// scraping a real superd.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const monitoringDir = "../../deploy/monitoring"

// specMetrics is SPEC §4: every superd metric family and its type.
var specMetrics = map[string]string{
	"superd_activations_total":                            "counter",
	"superd_connections_accepted_total":                   "counter",
	"superd_connections_rejected_total":                   "counter",
	"superd_instances":                                    "gauge",
	"superd_child_exits_total":                            "counter",
	"superd_child_duration_seconds":                       "histogram",
	"superd_spawn_seconds":                                "histogram",
	"superd_service_up":                                   "gauge",
	"superd_config_last_reload_successful":                "gauge",
	"superd_config_last_reload_success_timestamp_seconds": "gauge",
	"superd_build_info":                                   "gauge",
}

// extraMetrics are the families superd exposes beyond SPEC §4, each listed
// in docs/monitoring.md.
var extraMetrics = map[string]string{
	"superd_service_disabled": "gauge",
}

// metricType is the type of a superd family, SPEC §4's or an extra one;
// "" for a name superd does not expose.
func metricType(name string) string {
	if typ := specMetrics[name]; typ != "" {
		return typ
	}
	return extraMetrics[name]
}

// needPromTool returns the path of a Prometheus tool. Without it the test is
// skipped on a developer's machine, but fails under CI, where `make test`
// installs the prometheus package.
func needPromTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found, and CI=true: `make test-deps` installs the prometheus package", name)
	}
	t.Skipf("%s not found: install the prometheus package (`make test-deps` does) to run this test", name)
	return ""
}

// metricsExposition is one scrape of /metrics in the text format.
type metricsExposition struct {
	text    string
	samples map[string]string // `name{labels}` exactly as exposed → value
	types   map[string]string // family → TYPE
}

func parseExposition(text string) metricsExposition {
	e := metricsExposition{text: text, samples: map[string]string{}, types: map[string]string{}}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			e.types[f[2]] = f[3]
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			e.samples[line[:i]] = line[i+1:]
		}
	}
	return e
}

// sampleNames is every sample name exposed (histograms as their _bucket,
// _sum and _count series).
func (e metricsExposition) sampleNames() map[string]bool {
	names := map[string]bool{}
	for s := range e.samples {
		if i := strings.IndexByte(s, '{'); i >= 0 {
			s = s[:i]
		}
		names[s] = true
	}
	return names
}

func scrapeMetrics(t *testing.T, admin string) metricsExposition {
	t.Helper()
	return parseExposition(get(t, "http://"+admin+"/metrics"))
}

// waitForMetrics scrapes until every sample in want has its value, and fails
// with what differs at the deadline.
func waitForMetrics(t *testing.T, admin string, want map[string]float64) metricsExposition {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		e := scrapeMetrics(t, admin)
		var wrong []string
		for series, v := range want {
			got, ok := e.samples[series]
			if !ok {
				wrong = append(wrong, fmt.Sprintf("%s: missing, want %g", series, v))
				continue
			}
			if f, err := strconv.ParseFloat(got, 64); err != nil || f != v {
				wrong = append(wrong, fmt.Sprintf("%s = %s, want %g", series, got, v))
			}
		}
		if len(wrong) == 0 {
			return e
		}
		if time.Now().After(deadline) {
			sort.Strings(wrong)
			t.Fatalf("/metrics after 15s:\n  %s\nexposition:\n%s", strings.Join(wrong, "\n  "), e.text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readConn connects, reads until superd or the child closes, and returns
// what was read.
func readConn(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading from %s: %v", addr, err)
	}
	return string(b)
}

// metricsTraffic is a running superd with three services after known
// traffic: hello (answers "hi" and exits) served 3 clients; busy
// (max_instances: 1) has one child holding its connection, and refused a
// second connection; off is disabled.
type metricsTraffic struct {
	r       *running
	admin   string
	hello   string // address of hello
	busy    string // address of busy
	held    net.Conn
	metrics metricsExposition // /metrics once all of the above is counted
}

func startMetricsTraffic(t *testing.T) *metricsTraffic {
	t.Helper()
	dir := t.TempDir()
	tr := &metricsTraffic{
		admin: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		hello: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		busy:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}
	// busy's child reads one line from its stdin, the connection: it runs
	// until the client sends a line or hangs up.
	cfg := writeFile(t, dir, "superd.yaml", fmt.Sprintf(`
admin: {listen: "%s"}
log: {format: json}
services:
  hello:
    listen: tcp://%s
    exec: [/bin/sh, -c, 'echo hi']
%s  busy:
    listen: tcp://%s
    exec: [/bin/sh, -c, 'read x']
    max_instances: 1
%s  off:
    listen: tcp://127.0.0.1:%d
    exec: [/bin/sh, -c, 'echo off']
    disabled: true
%s`, tr.admin, tr.hello, userLine(), tr.busy, userLine(), freePort(t), userLine()))
	tr.r = startSuperd(t, cfg, tr.admin)

	for i := 0; i < 3; i++ {
		if got := readConn(t, tr.hello); got != "hi\n" {
			t.Fatalf("hello client %d read %q, want %q", i, got, "hi\n")
		}
	}

	held, err := net.Dial("tcp", tr.busy)
	if err != nil {
		t.Fatal(err)
	}
	tr.held = held
	t.Cleanup(func() { held.Close() })
	// The second connection may only come once the first child counts
	// against max_instances.
	waitForMetrics(t, tr.admin, map[string]float64{`superd_instances{service="busy"}`: 1})
	if got := readConn(t, tr.busy); got != "" {
		t.Fatalf("a connection over max_instances read %q; superd should close it at once", got)
	}

	tr.metrics = waitForMetrics(t, tr.admin, map[string]float64{
		`superd_child_exits_total{outcome="success",service="hello"}`:              3,
		`superd_connections_rejected_total{reason="max_instances",service="busy"}`: 1,
		`superd_connections_accepted_total{service="busy"}`:                        2,
	})
	return tr
}

func TestMetricsCountRealTrafficExactly(t *testing.T) {
	tr := startMetricsTraffic(t)
	want := map[string]float64{
		`superd_activations_total{service="hello"}`:                                       3,
		`superd_connections_accepted_total{service="hello"}`:                              3,
		`superd_child_exits_total{outcome="success",service="hello"}`:                     3,
		`superd_spawn_seconds_count{service="hello"}`:                                     3,
		`superd_spawn_seconds_bucket{service="hello",le="+Inf"}`:                          3,
		`superd_child_duration_seconds_count{service="hello"}`:                            3,
		`superd_child_duration_seconds_bucket{service="hello",le="+Inf"}`:                 3,
		`superd_instances{service="hello"}`:                                               0,
		`superd_service_up{service="hello"}`:                                              1,
		`superd_activations_total{service="busy"}`:                                        1,
		`superd_connections_accepted_total{service="busy"}`:                               2,
		`superd_connections_rejected_total{reason="max_instances",service="busy"}`:        1,
		`superd_instances{service="busy"}`:                                                1,
		`superd_spawn_seconds_count{service="busy"}`:                                      1,
		`superd_service_up{service="busy"}`:                                               1,
		`superd_service_up{service="off"}`:                                                0,
		`superd_service_disabled{service="off"}`:                                          1,
		`superd_config_last_reload_successful`:                                            1,
		fmt.Sprintf(`superd_build_info{goversion="%s",version="dev"}`, runtime.Version()): 1,
	}
	e := waitForMetrics(t, tr.admin, want)

	// Every family of SPEC §4 and every extra one, with its type, and
	// nothing superd_* besides.
	for _, known := range []map[string]string{specMetrics, extraMetrics} {
		for name, typ := range known {
			if got := e.types[name]; got != typ {
				t.Errorf("TYPE of %s = %q, want %q", name, got, typ)
			}
		}
	}
	for name := range e.types {
		if strings.HasPrefix(name, "superd_") && metricType(name) == "" {
			t.Errorf("/metrics has %s, which neither SPEC §4 nor extraMetrics names", name)
		}
	}
	if strings.Contains(e.text, `superd_service_disabled{service="hello"}`) {
		t.Errorf("superd_service_disabled has a series for an enabled service:\n%s", e.text)
	}
	for _, std := range []string{"go_goroutines", "process_open_fds", "process_start_time_seconds"} {
		if e.types[std] == "" {
			t.Errorf("/metrics lacks the standard %s", std)
		}
	}
	// Labels stay bounded: no client address in any series.
	if strings.Contains(e.text, "127.0.0.1") {
		t.Errorf("a client or listen address appears in /metrics:\n%s", e.text)
	}
	ts, err := strconv.ParseFloat(e.samples["superd_config_last_reload_success_timestamp_seconds"], 64)
	if err != nil || time.Since(time.Unix(int64(ts), 0)) > 10*time.Minute || time.Unix(int64(ts), 0).After(time.Now().Add(time.Minute)) {
		t.Errorf("superd_config_last_reload_success_timestamp_seconds = %s, want about now", e.samples["superd_config_last_reload_success_timestamp_seconds"])
	}

	// The held child answers a line and exits 0; then busy counts like hello.
	tr.held.Write([]byte("bye\n"))
	waitForMetrics(t, tr.admin, map[string]float64{
		`superd_instances{service="busy"}`:                           0,
		`superd_child_exits_total{outcome="success",service="busy"}`: 1,
		`superd_child_duration_seconds_count{service="busy"}`:        1,
		`superd_activations_total{service="busy"}`:                   1,
	})
	if code := tr.r.stop(t); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
}

func TestStatusShowsAChildInFlight(t *testing.T) {
	tr := startMetricsTraffic(t)
	if body := get(t, "http://"+tr.admin+"/healthz"); body != "ok\n" {
		t.Errorf("/healthz = %q, want %q", body, "ok\n")
	}

	type status struct {
		Services []struct {
			Name        string   `json:"name"`
			Mode        string   `json:"mode"`
			Sockets     []string `json:"sockets"`
			State       string   `json:"state"`
			Instances   int      `json:"instances"`
			Activations uint64   `json:"activations"`
			Children    []struct {
				PID     int       `json:"pid"`
				Remote  string    `json:"remote"`
				Started time.Time `json:"started"`
			} `json:"children"`
		} `json:"services"`
	}
	check := func(from, body string) {
		t.Helper()
		var st status
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("%s: %v\n%s", from, err, body)
		}
		seen := map[string]bool{}
		for _, s := range st.Services {
			seen[s.Name] = true
			switch s.Name {
			case "hello":
				if s.Mode != "accept" || s.State != "listening" || s.Instances != 0 || s.Activations != 3 || len(s.Children) != 0 {
					t.Errorf("%s: hello = %+v", from, s)
				}
			case "busy":
				if s.Mode != "accept" || s.State != "listening" || s.Instances != 1 || s.Activations != 1 || len(s.Children) != 1 {
					t.Errorf("%s: busy = %+v", from, s)
					continue
				}
				c := s.Children[0]
				if c.Remote != tr.held.LocalAddr().String() {
					t.Errorf("%s: child remote = %q, want the held client %s", from, c.Remote, tr.held.LocalAddr())
				}
				if age := time.Since(c.Started); age < 0 || age > time.Minute {
					t.Errorf("%s: child started %v, %v ago", from, c.Started, age)
				}
				// The pid is the live child: sh running `read x`.
				cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c.PID))
				if err != nil || !bytes.Contains(cmdline, []byte("read x")) {
					t.Errorf("%s: child pid %d: cmdline %q, %v", from, c.PID, cmdline, err)
				}
			}
		}
		if !seen["hello"] || !seen["busy"] {
			t.Errorf("%s: services %v, want hello and busy\n%s", from, seen, body)
		}
	}

	check("/status", get(t, "http://"+tr.admin+"/status"))

	code, out, errs := superd(t, "status", "--addr", tr.admin, "--json")
	if code != 0 {
		t.Fatalf("superd status --json: exit %d\n%s", code, errs)
	}
	check("superd status --json", out)

	code, out, errs = superd(t, "status", "--addr", tr.admin)
	if code != 0 {
		t.Fatalf("superd status: exit %d\n%s", code, errs)
	}
	if !regexp.MustCompile(`^SERVICE\s+MODE\s+SOCKETS\s+STATE\s+ACTIVE\s+ACTIVATIONS\n`).MatchString(out) {
		t.Errorf("superd status: no header line:\n%s", out)
	}
	for _, row := range []string{
		`(?m)^hello\s+accept\s+tcp4?://` + regexp.QuoteMeta(tr.hello) + `\s+listening\s+0\s+3\s*$`,
		`(?m)^busy\s+accept\s+tcp4?://` + regexp.QuoteMeta(tr.busy) + `\s+listening\s+1\s+1\s*$`,
	} {
		if !regexp.MustCompile(row).MatchString(out) {
			t.Errorf("superd status: no row matching %s:\n%s", row, out)
		}
	}
}

func TestPromtoolCheckMetricsOnTheLiveExposition(t *testing.T) {
	promtool := needPromTool(t, "promtool")
	tr := startMetricsTraffic(t)
	text := tr.metrics.text
	if !strings.Contains(text, "superd_connections_rejected_total") || !strings.Contains(text, "superd_spawn_seconds_bucket") {
		t.Fatalf("the metricsExposition lacks families promtool should see:\n%s", text)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestPromtoolChecksTheShippedRulesAndConfig(t *testing.T) {
	promtool := needPromTool(t, "promtool")
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	rules := filepath.Join(monitoringDir, "superd.rules.yml")
	run("check", "rules", rules)
	// The unit tests of the rules: each alert fires when it should and
	// not before.
	run("test", "rules", filepath.Join(monitoringDir, "superd.rules.test.yml"))

	// prometheus.yml names its rule file relative to itself; check a copy
	// with the rules beside it, as an operator installs them.
	dir := t.TempDir()
	for _, f := range []string{"prometheus.yml", "superd.rules.yml"} {
		b, err := os.ReadFile(filepath.Join(monitoringDir, f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, f, string(b))
	}
	run("check", "config", filepath.Join(dir, "prometheus.yml"))

	// The example scrapes superd's default admin address every 15s as job
	// superd.
	b, _ := os.ReadFile(filepath.Join(dir, "prometheus.yml"))
	for _, want := range []string{"job_name: superd", `"127.0.0.1:9750"`, "scrape_interval: 15s", "file_sd_configs"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("prometheus.yml lacks %q", want)
		}
	}
}

// grafanaDashboard is what the tests read of grafana-dashboard.json.
type grafanaDashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	SchemaVersion int `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Definition string          `json:"definition"`
			Datasource json.RawMessage `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title      string          `json:"title"`
		Datasource json.RawMessage `json:"datasource"`
		Targets    []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func readGrafanaDashboard(t *testing.T) (grafanaDashboard, []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(monitoringDir, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	// Every "expr", however deep, so a panel added in a row is not missed.
	var raw any
	json.Unmarshal(b, &raw)
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(raw)
	sort.Strings(exprs)
	return d, exprs
}

var (
	promqlString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promqlMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promqlRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promqlGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlToken    = regexp.MustCompile(`[A-Za-z0-9_:.$]+(\s*\()?`)
	promqlKeywords = map[string]bool{
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"bool": true, "and": true, "or": true, "unless": true, "offset": true, "inf": true, "nan": true,
	}
)

// promqlMetricNames returns the metric names a PromQL expression selects:
// what is left once strings, label matchers, ranges, groupings, functions,
// keywords, numbers and Grafana variables are taken out.
func promqlMetricNames(expr string) []string {
	e := promqlString.ReplaceAllString(expr, `""`)
	e = promqlMatchers.ReplaceAllString(e, " ")
	e = promqlRange.ReplaceAllString(e, " ")
	e = promqlGrouping.ReplaceAllString(e, " ")
	var names []string
	for _, m := range promqlToken.FindAllStringSubmatch(e, -1) {
		tok := m[0]
		if m[1] != "" || promqlKeywords[strings.ToLower(tok)] {
			continue // a function or aggregation, or a keyword
		}
		if c := tok[0]; c >= '0' && c <= '9' || c == '.' || c == '$' {
			continue // a number or a Grafana variable
		}
		names = append(names, tok)
	}
	return names
}

func TestDashboardPromQLMetricNamesAreFound(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (service) (rate(superd_activations_total{service=~"$service"}[$__rate_interval]))`, []string{"superd_activations_total"}},
		{`histogram_quantile(0.99, sum by (service, le) (rate(superd_spawn_seconds_bucket{le!="1e3"}[5m])))`, []string{"superd_spawn_seconds_bucket"}},
		{`superd_instances / on (service) group_left superd_service_up > 1e3`, []string{"superd_instances", "superd_service_up"}},
		{`max_over_time(up{job="superd"}[1m]) or vector(0)`, []string{"up"}},
	} {
		if got := promqlMetricNames(tc.expr); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("promqlMetricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

func TestDashboardQueriesOnlyLiveSuperdMetrics(t *testing.T) {
	d, exprs := readGrafanaDashboard(t)
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d; the dashboard targets Grafana 10 (schema 39)", d.SchemaVersion)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].Type != "datasource" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs = %+v, want one prometheus datasource input DS_PROMETHEUS", d.Inputs)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Definition
		if !bytes.Contains(v.Datasource, []byte("${DS_PROMETHEUS}")) {
			t.Errorf("variable %s: datasource %s, want ${DS_PROMETHEUS}", v.Name, v.Datasource)
		}
	}
	if vars["service"] != "label_values(superd_activations_total, service)" {
		t.Errorf("service variable = %q", vars["service"])
	}
	for _, p := range d.Panels {
		if !bytes.Contains(p.Datasource, []byte("${DS_PROMETHEUS}")) {
			t.Errorf("panel %q: datasource %s, want ${DS_PROMETHEUS}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
	if len(d.Panels) < 7 || len(exprs) < 9 {
		t.Errorf("%d panels and %d queries; want at least the 7 panels of docs/monitoring.md", len(d.Panels), len(exprs))
	}

	// The names superd really exposes, once every family has a series.
	tr := startMetricsTraffic(t)
	live := tr.metrics.sampleNames()
	// Variable queries, label_values(SELECTOR, LABEL), select metrics too.
	selectors := map[string]bool{}
	for name, def := range vars {
		sel, _, ok := strings.Cut(strings.TrimPrefix(def, "label_values("), ",")
		if !strings.HasPrefix(def, "label_values(") || !ok {
			t.Errorf("variable %s = %q, want label_values(SELECTOR, LABEL)", name, def)
			continue
		}
		selectors[sel] = true
		exprs = append(exprs, sel)
	}
	for _, expr := range exprs {
		names := promqlMetricNames(expr)
		if len(names) == 0 {
			t.Errorf("no metric name found in %q", expr)
		}
		for _, n := range names {
			family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
			if metricType(family) == "" && metricType(n) == "" {
				t.Errorf("%q queries %s, which superd does not name (SPEC §4, extraMetrics)", expr, n)
			}
			if !live[n] {
				t.Errorf("%q queries %s, which superd's /metrics does not expose", expr, n)
			}
		}
		if !selectors[expr] && strings.Contains(expr, "service") && !strings.Contains(expr, `service=~"$service"`) {
			t.Errorf("%q ignores the service variable", expr)
		}
	}
}

// promServer is a Prometheus server started by a test.
type promServer struct {
	addr   string
	stderr *logFile
	exited chan error
}

// startPromServer runs a Prometheus on loopback that scrapes target every
// second as job superd, with the shipped rules loaded, and waits until it
// is ready.
func startPromServer(t *testing.T, target string) *promServer {
	t.Helper()
	bin := needPromTool(t, "prometheus")
	dir := t.TempDir()
	rules, err := filepath.Abs(filepath.Join(monitoringDir, "superd.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, dir, "prometheus.yml", fmt.Sprintf(`
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: superd
    static_configs:
      - targets: [%q]
`, rules, target))
	p := &promServer{
		addr:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		stderr: newLogFile(t),
		exited: make(chan error, 1),
	}
	cmd := exec.Command(bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr,
	)
	cmd.Stdout, cmd.Stderr = p.stderr.f, p.stderr.f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	// Registered after t.TempDir, so it runs before the data directory is
	// removed.
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			t.Errorf("prometheus (pid %d) did not exit within 30s of SIGTERM; killing it", cmd.Process.Pid)
			cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", p.stderr.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			t.Fatalf("prometheus exited early: %v\n%s", err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 30s\n%s", p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// promSample is one element of an instant vector from the HTTP API.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query runs an instant query through the HTTP API.
func (p *promServer) query(t *testing.T, q string) []promSample {
	t.Helper()
	body := get(t, "http://"+p.addr+"/api/v1/query?query="+url.QueryEscape(q))
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("query %s: %v\n%s", q, err, body)
	}
	if r.Status != "success" || r.Data.ResultType != "vector" {
		t.Fatalf("query %s: status %s, type %s: %s", q, r.Status, r.Data.ResultType, r.Error)
	}
	return r.Data.Result
}

// waitQuery polls an instant query until it returns exactly one sample of
// value want.
func (p *promServer) waitQuery(t *testing.T, q, want string) promSample {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		res := p.query(t, q)
		if len(res) == 1 && res[0].Value[1] == want {
			return res[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus answered %s with %+v for 60s, want one sample = %s", q, res, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestPrometheusScrapesSuperd(t *testing.T) {
	needPromTool(t, "prometheus")
	dir := t.TempDir()
	port, admin := freePort(t), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := writeFile(t, dir, "superd.yaml", fmt.Sprintf(`
admin: {listen: "%s"}
services:
  hello:
    listen: tcp://127.0.0.1:%d
    exec: [/bin/sh, -c, 'echo hi']
%s  off:
    listen: tcp://127.0.0.1:%d
    exec: [/bin/sh, -c, 'echo off']
    disabled: true
%s`, admin, port, userLine(), freePort(t), userLine()))
	startSuperd(t, cfg, admin)
	p := startPromServer(t, admin)

	const n = 5
	for i := 0; i < n; i++ {
		if got := readConn(t, fmt.Sprintf("127.0.0.1:%d", port)); got != "hi\n" {
			t.Fatalf("client %d read %q", i, got)
		}
	}
	q := `superd_activations_total{service="hello"}`
	s := p.waitQuery(t, q, strconv.Itoa(n))
	if s.Metric["job"] != "superd" || s.Metric["instance"] != admin {
		t.Errorf("%s: labels %v, want job superd, instance %s", q, s.Metric, admin)
	}
	t.Logf("Prometheus answered %s with: %s", q, get(t, "http://"+p.addr+"/api/v1/query?query="+url.QueryEscape(q)))
	p.waitQuery(t, `up{job="superd"}`, "1")
	p.waitQuery(t, `superd_child_exits_total{service="hello",outcome="success"}`, strconv.Itoa(n))
	p.waitQuery(t, `superd_service_up{service="hello"}`, "1")

	// The shipped rules load and evaluate without error against real
	// series, and the recording rule produces its series.
	var serviceDown string // the alert's expression, as Prometheus loaded it
	deadline := time.Now().Add(60 * time.Second)
	for {
		var r struct {
			Data struct {
				Groups []struct {
					Name  string `json:"name"`
					Rules []struct {
						Name      string `json:"name"`
						Query     string `json:"query"`
						Health    string `json:"health"`
						LastError string `json:"lastError"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		body := get(t, "http://"+p.addr+"/api/v1/rules")
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("/api/v1/rules: %v\n%s", err, body)
		}
		var pending []string
		nrules := 0
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				nrules++
				if rule.Name == "SuperdServiceDown" {
					serviceDown = rule.Query
				}
				switch rule.Health {
				case "ok":
				case "err":
					t.Fatalf("rule %s/%s: %s", g.Name, rule.Name, rule.LastError)
				default:
					pending = append(pending, rule.Name+": "+rule.Health)
				}
			}
		}
		if nrules > 0 && len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rules not evaluated after 60s: %d rules, pending %v", nrules, pending)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.waitQuery(t, `count(job_service:superd_activations:rate5m{job="superd",service="hello"})`, "1")
	// No alert fires for a healthy superd.
	if res := p.query(t, `ALERTS{alertstate="firing"}`); len(res) != 0 {
		t.Errorf("alerts firing against a healthy superd: %+v", res)
	}
	// A disabled service is down, on purpose: SuperdServiceDown's
	// expression leaves it out.
	p.waitQuery(t, `superd_service_up{service="off"}`, "0")
	p.waitQuery(t, `superd_service_disabled{service="off"}`, "1")
	if serviceDown == "" {
		t.Fatal("the rules have no SuperdServiceDown alert")
	}
	if res := p.query(t, serviceDown); len(res) != 0 {
		t.Errorf("SuperdServiceDown's expression %q selects %+v; a disabled service is down on purpose", serviceDown, res)
	}

	// Every dashboard query is valid PromQL that the real server evaluates,
	// with Grafana's variables as Grafana would fill them in.
	_, exprs := readGrafanaDashboard(t)
	fill := strings.NewReplacer(`$instance`, `.*`, `$service`, `hello`, `$__rate_interval`, `1m`)
	for _, expr := range exprs {
		p.query(t, fill.Replace(expr))
	}
	// The per-service panels find hello.
	for _, expr := range exprs {
		if !strings.Contains(expr, "$service") || strings.Contains(expr, "rejected") {
			continue
		}
		if strings.Contains(expr, "histogram_quantile") || strings.Contains(expr, "rate(") {
			continue // needs two scrapes after the traffic to be non-empty
		}
		if res := p.query(t, fill.Replace(expr)); len(res) == 0 {
			t.Errorf("dashboard query %s found nothing for hello", expr)
		}
	}
}
