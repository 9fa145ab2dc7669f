// Package metrics defines superd's Prometheus metrics (SPEC §4) and serves
// the admin HTTP endpoints.
//
// Invariant: metrics observe, they never steer. Labels are bounded (service,
// reason, outcome); a client address is never a label.
package metrics

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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

// Metrics holds every superd collector. Create it with New; the server takes
// per-service children of the vectors once per service so the hot path does
// no label lookups.
type Metrics struct {
	Registry *prometheus.Registry

	Activations          *prometheus.CounterVec
	ConnectionsAccepted  *prometheus.CounterVec
	ConnectionsRejected  *prometheus.CounterVec
	Instances            *prometheus.GaugeVec
	ChildExits           *prometheus.CounterVec
	ChildDuration        *prometheus.HistogramVec
	SpawnSeconds         *prometheus.HistogramVec
	ServiceUp            *prometheus.GaugeVec
	ReloadSuccessful     prometheus.Gauge
	ReloadSuccessSeconds prometheus.Gauge
}

// New creates the collectors and registers them, with the Go and process
// collectors and superd_build_info, on a new registry.
func New(version string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Activations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "superd_activations_total",
			Help: "Children started, per service.",
		}, []string{"service"}),
		ConnectionsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "superd_connections_accepted_total",
			Help: "Connections accepted by superd (accept mode), per service.",
		}, []string{"service"}),
		ConnectionsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "superd_connections_rejected_total",
			Help: "Connections or activations refused, per service and reason.",
		}, []string{"service", "reason"}),
		Instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "superd_instances",
			Help: "Children running now, per service.",
		}, []string{"service"}),
		ChildExits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "superd_child_exits_total",
			Help: "Children that exited, per service and outcome (success, failure, signal, stopped).",
		}, []string{"service", "outcome"}),
		ChildDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "superd_child_duration_seconds",
			Help:    "How long children ran, per service.",
			Buckets: durationBuckets,
		}, []string{"service"}),
		SpawnSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "superd_spawn_seconds",
			Help:    "Time from a socket being ready (a connection accepted, or a wait-mode socket readable) to the child running.",
			Buckets: spawnBuckets,
		}, []string{"service"}),
		ServiceUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "superd_service_up",
			Help: "1 while the service listens; 0 while it is failed, disabled or paused.",
		}, []string{"service"}),
		ReloadSuccessful: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "superd_config_last_reload_successful",
			Help: "1 if the last configuration load succeeded, else 0.",
		}),
		ReloadSuccessSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "superd_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful configuration load.",
		}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "superd_build_info",
		Help:        "Always 1; labels say which superd this is.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	reg.MustRegister(
		m.Activations, m.ConnectionsAccepted, m.ConnectionsRejected, m.Instances,
		m.ChildExits, m.ChildDuration, m.SpawnSeconds, m.ServiceUp,
		m.ReloadSuccessful, m.ReloadSuccessSeconds, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Reasons and Outcomes are every label value superd uses.
var (
	Reasons  = []string{ReasonMaxInstances, ReasonMaxPerSource, ReasonRateLimit, ReasonAccess, ReasonAccessTimes, ReasonSpawnError, ReasonResources}
	Outcomes = []string{OutcomeSuccess, OutcomeFailure, OutcomeSignal, OutcomeStopped}
)

// Series that exist from the start at 0, because an alert watches them:
// increase() cannot see the first event of a series that appears with it.
// The others appear at their first event — each series costs about half a
// KiB, and a host may configure thousands of services.
var (
	eagerReasons  = []string{ReasonSpawnError}
	eagerOutcomes = []string{OutcomeFailure}
)

// Service is one service's metric children, resolved once so that counting
// an activation, a refusal or an exit costs a map lookup at most and never
// a label hash. A Service belongs to one goroutine (the event loop).
type Service struct {
	Activations prometheus.Counter
	Accepted    prometheus.Counter
	Instances   prometheus.Gauge
	Up          prometheus.Gauge
	rejected    map[string]prometheus.Counter
	exits       map[string]prometheus.Counter
	// The histograms are resolved at their first observation: they are
	// most of a service's metric memory (about 6 KiB of buckets), and a
	// host with thousands of configured services activates few of them.
	spawnSeconds, childDuration prometheus.Observer
	m                           *Metrics
	name                        string
}

// ForService resolves the per-service children for name.
func (m *Metrics) ForService(name string) *Service {
	s := &Service{
		Activations: m.Activations.WithLabelValues(name),
		Accepted:    m.ConnectionsAccepted.WithLabelValues(name),
		Instances:   m.Instances.WithLabelValues(name),
		Up:          m.ServiceUp.WithLabelValues(name),
		rejected:    make(map[string]prometheus.Counter, len(eagerReasons)),
		exits:       make(map[string]prometheus.Counter, len(eagerOutcomes)),
		m:           m,
		name:        name,
	}
	for _, r := range eagerReasons {
		s.rejected[r] = m.ConnectionsRejected.WithLabelValues(name, r)
	}
	for _, o := range eagerOutcomes {
		s.exits[o] = m.ChildExits.WithLabelValues(name, o)
	}
	return s
}

// ObserveSpawn records one spawn's latency in seconds.
func (s *Service) ObserveSpawn(seconds float64) {
	if s.spawnSeconds == nil {
		s.spawnSeconds = s.m.SpawnSeconds.WithLabelValues(s.name)
	}
	s.spawnSeconds.Observe(seconds)
}

// ObserveDuration records how long one child (or session) ran, in seconds.
func (s *Service) ObserveDuration(seconds float64) {
	if s.childDuration == nil {
		s.childDuration = s.m.ChildDuration.WithLabelValues(s.name)
	}
	s.childDuration.Observe(seconds)
}

// Rejected counts one refusal for reason, one of Reasons.
func (s *Service) Rejected(reason string) {
	c := s.rejected[reason]
	if c == nil {
		c = s.m.ConnectionsRejected.WithLabelValues(s.name, reason)
		s.rejected[reason] = c
	}
	c.Inc()
}

// Exited counts one child exit with outcome, one of Outcomes.
func (s *Service) Exited(outcome string) {
	c := s.exits[outcome]
	if c == nil {
		c = s.m.ChildExits.WithLabelValues(s.name, outcome)
		s.exits[outcome] = c
	}
	c.Inc()
}

// Forget removes every series of a service that no longer exists, so a
// reload does not leave stale series behind.
func (m *Metrics) Forget(name string) {
	l := prometheus.Labels{"service": name}
	m.Activations.DeletePartialMatch(l)
	m.ConnectionsAccepted.DeletePartialMatch(l)
	m.ConnectionsRejected.DeletePartialMatch(l)
	m.Instances.DeletePartialMatch(l)
	m.ChildExits.DeletePartialMatch(l)
	m.ChildDuration.DeletePartialMatch(l)
	m.SpawnSeconds.DeletePartialMatch(l)
	m.ServiceUp.DeletePartialMatch(l)
}
