// Package metrics defines superd's Prometheus metrics (SPEC §4) and serves
// the admin HTTP endpoints.
//
// Invariant: metrics observe, they never steer. Labels are bounded (service,
// reason, outcome); a client address is never a label.
package metrics

import (
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Rejection reasons for superd_connections_rejected_total.
const (
	ReasonMaxInstances = "max_instances"
	ReasonMaxPerSource = "max_per_source"
	ReasonRateLimit    = "rate_limit"
	ReasonAccess       = "access"
	ReasonAccessTimes  = "access_times"
	ReasonSpawnError   = "spawn_error"
	ReasonResources    = "resources"
)

// Child exit outcomes for superd_child_exits_total.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeSignal  = "signal"
	OutcomeStopped = "stopped"
)

// spawnBuckets span a fork+exec on an idle host (tens of µs) up to a host
// swapping or a launcher-started Go child (seconds).
var spawnBuckets = []float64{
	25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5,
}

// durationBuckets span a child answering one request (ms) to a long-lived
// wait-mode daemon (hours).
var durationBuckets = []float64{
	0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400,
}

// Metrics holds superd's collectors. Create it with New.
//
// The per-service families are not client_golang vectors: a vector child
// costs about half a KiB per series (a histogram about 6 KiB), and a host
// may configure thousands of services. Each service is instead a few words
// of plain state, turned into const metrics only while a scrape runs.
type Metrics struct {
	// Registry holds every family; /metrics serves the same, streaming
	// the per-service ones (serveMetrics). A collector registered here
	// after New would be missing from the streamed text formats: register
	// it in New, with the others.
	Registry *prometheus.Registry
	// others is Registry without the per-service families.
	others *prometheus.Registry
	// whole serves Registry as client_golang does, for the formats
	// serveMetrics does not stream.
	whole http.Handler

	ReloadSuccessful     prometheus.Gauge
	ReloadSuccessSeconds prometheus.Gauge

	services serviceSet
}

// New creates the collectors and registers them, with the Go and process
// collectors and superd_build_info, on a new registry.
func New(version string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		others:   prometheus.NewRegistry(),
		ReloadSuccessful: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "superd_config_last_reload_successful",
			Help: "1 if the last configuration load succeeded, else 0.",
		}),
		ReloadSuccessSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "superd_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful configuration load.",
		}),
		services: serviceSet{byName: make(map[string]*Service)},
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "superd_build_info",
		Help:        "Always 1; labels say which superd this is.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	others := []prometheus.Collector{
		m.ReloadSuccessful, m.ReloadSuccessSeconds, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	m.others.MustRegister(others...)
	reg.MustRegister(append(others, &m.services)...)
	m.whole = promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
	return m
}

// Reasons and Outcomes are every label value superd uses. Their order is
// the order of Service's per-reason and per-outcome counters.
var (
	Reasons  = []string{ReasonMaxInstances, ReasonMaxPerSource, ReasonRateLimit, ReasonAccess, ReasonAccessTimes, ReasonSpawnError, ReasonResources}
	Outcomes = []string{OutcomeSuccess, OutcomeFailure, OutcomeSignal, OutcomeStopped}
)

const (
	numReasons  = 7
	numOutcomes = 4
)

// reasonIndex and outcomeIndex map a label value to its counter without a
// map lookup; -1 for a value superd does not use.
func reasonIndex(reason string) int {
	switch reason {
	case ReasonMaxInstances:
		return 0
	case ReasonMaxPerSource:
		return 1
	case ReasonRateLimit:
		return 2
	case ReasonAccess:
		return 3
	case ReasonAccessTimes:
		return 4
	case ReasonSpawnError:
		return 5
	case ReasonResources:
		return 6
	}
	return -1
}

func outcomeIndex(outcome string) int {
	switch outcome {
	case OutcomeSuccess:
		return 0
	case OutcomeFailure:
		return 1
	case OutcomeSignal:
		return 2
	case OutcomeStopped:
		return 3
	}
	return -1
}

// Series that exist from the start at 0, because an alert watches them:
// increase() cannot see the first event of a series that appears with it.
// The others appear at their first event, so that a scrape of a host with
// thousands of idle services stays small.
var (
	eagerReasons  = []string{ReasonSpawnError}
	eagerOutcomes = []string{OutcomeFailure}
)

// Service is one service's metric state. Its counters are atomics written
// by the event loop and read by scrapes on other goroutines; nothing on it
// allocates after the first observation of each histogram, and counting
// costs no label hash or map lookup.
//
// A service that a reload keeps, under the same name, keeps its Service:
// its counts go on across reloads.
type Service struct {
	Activations Counter
	Accepted    Counter
	Instances   Gauge
	// state holds upBit and disabledBit, set together by SetUp so a
	// scrape never sees one without the other.
	state atomic.Uint32
	// rejected and exits are indexed as Reasons and Outcomes. A non-eager
	// series is exposed once its count is above 0: counters only grow, so
	// that is exactly "after its first event".
	rejected [numReasons]atomic.Uint64
	exits    [numOutcomes]atomic.Uint64
	// The histograms are made at their first observation: most configured
	// services on a busy host are never activated.
	spawnSeconds, childDuration atomic.Pointer[histogram]
	name                        string
	// created (Unix ns) is every counter's and histogram's created
	// timestamp: each of them has been 0 since the service first existed,
	// even one that is exposed only from its first event.
	created int64
}

// ForService returns the metric state of the service name, making it at
// the first call for name (or the first since Forget(name)).
func (m *Metrics) ForService(name string) *Service {
	ss := &m.services
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byName[name]
	if s == nil {
		s = &Service{name: name, created: time.Now().UnixNano()}
		ss.byName[name] = s
	}
	return s
}

// Forget removes every series of a service that no longer exists, so a
// reload does not leave stale series behind. A *Service still held for
// name goes on counting, unseen; ForService(name) starts again from 0.
func (m *Metrics) Forget(name string) {
	ss := &m.services
	ss.mu.Lock()
	delete(ss.byName, name)
	ss.mu.Unlock()
}

const (
	upBit       = 1 << iota // superd_service_up is 1
	disabledBit             // superd_service_disabled is exposed
)

// SetUp sets superd_service_up to 1 if up, else 0, and says whether the
// service is down on purpose (disabled: true, or removed by a reload while
// its children finish). superd_service_disabled exposes that, so that an
// alert on superd_service_up can leave such services out; its series
// exists only while it is 1, so a host with thousands of enabled services
// scrapes no extra line for them.
func (s *Service) SetUp(up, disabled bool) {
	var st uint32
	if up {
		st |= upBit
	}
	if disabled {
		st |= disabledBit
	}
	s.state.Store(st)
}

// ObserveSpawn records one spawn's latency in seconds.
func (s *Service) ObserveSpawn(seconds float64) {
	observe(&s.spawnSeconds, spawnBuckets, seconds)
}

// ObserveDuration records how long one child (or session) ran, in seconds.
func (s *Service) ObserveDuration(seconds float64) {
	observe(&s.childDuration, durationBuckets, seconds)
}

// Rejected counts one refusal for reason, one of Reasons; any other reason
// is not counted, as metrics never fail the caller.
func (s *Service) Rejected(reason string) {
	if i := reasonIndex(reason); i >= 0 {
		s.rejected[i].Add(1)
	}
}

// Exited counts one child exit with outcome, one of Outcomes; any other
// outcome is not counted.
func (s *Service) Exited(outcome string) {
	if i := outcomeIndex(outcome); i >= 0 {
		s.exits[i].Add(1)
	}
}
