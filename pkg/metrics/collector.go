package metrics

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The per-service families of SPEC §4. Their names, help texts and labels
// are part of superd's interface: dashboards and alerts use them.
var (
	activationsDesc = prometheus.NewDesc("superd_activations_total",
		"Children started, per service.",
		[]string{"service"}, nil)
	acceptedDesc = prometheus.NewDesc("superd_connections_accepted_total",
		"Connections accepted by superd (accept mode), per service.",
		[]string{"service"}, nil)
	rejectedDesc = prometheus.NewDesc("superd_connections_rejected_total",
		"Connections or activations refused, per service and reason.",
		[]string{"service", "reason"}, nil)
	instancesDesc = prometheus.NewDesc("superd_instances",
		"Children running now, per service.",
		[]string{"service"}, nil)
	exitsDesc = prometheus.NewDesc("superd_child_exits_total",
		"Children that exited, per service and outcome (success, failure, signal, stopped).",
		[]string{"service", "outcome"}, nil)
	durationDesc = prometheus.NewDesc("superd_child_duration_seconds",
		"How long children ran, per service.",
		[]string{"service"}, nil)
	spawnDesc = prometheus.NewDesc("superd_spawn_seconds",
		"Time from a socket being ready (a connection accepted, or a wait-mode socket readable) to the child running.",
		[]string{"service"}, nil)
	upDesc = prometheus.NewDesc("superd_service_up",
		"1 while the service listens; 0 while it is failed, disabled or paused.",
		[]string{"service"}, nil)
)

// eagerReason and eagerOutcome say, per index of Reasons and Outcomes,
// whether that series is exposed before its first event.
var (
	eagerReason  = eagerFlags(Reasons, eagerReasons)
	eagerOutcome = eagerFlags(Outcomes, eagerOutcomes)
)

func eagerFlags(all, eager []string) []bool {
	flags := make([]bool, len(all))
	for i, v := range all {
		for _, e := range eager {
			flags[i] = flags[i] || v == e
		}
	}
	return flags
}

// Counter is a per-service counter: Inc is one atomic add.
type Counter struct{ n atomic.Uint64 }

// Inc adds 1.
func (c *Counter) Inc() { c.n.Add(1) }

// Gauge is a per-service gauge, a float64 in an atomic word.
type Gauge struct{ bits atomic.Uint64 }

// Set sets the gauge to v.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Inc adds 1.
func (g *Gauge) Inc() { g.add(1) }

// Dec subtracts 1.
func (g *Gauge) Dec() { g.add(-1) }

func (g *Gauge) add(d float64) {
	for {
		old := g.bits.Load()
		if g.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

func (g *Gauge) value() float64 { return math.Float64frombits(g.bits.Load()) }

// histogram is one service's histogram. The lock, uncontended but for a
// scrape, lets a scrape read count, sum and buckets of the same
// observations, which separate atomics would not.
type histogram struct {
	mu     sync.Mutex
	bounds []float64 // upper bounds, shared by every service
	counts []uint64  // per bucket, not cumulative; the last is above every bound
	sum    float64
}

// observe records v in the histogram *p, making it at the first
// observation.
func observe(p *atomic.Pointer[histogram], bounds []float64, v float64) {
	h := p.Load()
	if h == nil {
		h = &histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
		if !p.CompareAndSwap(nil, h) {
			h = p.Load()
		}
	}
	// The first bound v is at or below, as client_golang finds it: NaN
	// lands above every bound.
	i := 0
	for i < len(bounds) && !(v <= bounds[i]) {
		i++
	}
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.mu.Unlock()
}

// metric is the histogram as a const metric of desc.
func (h *histogram) metric(desc *prometheus.Desc, ct time.Time, service string) (prometheus.Metric, error) {
	counts := make([]uint64, len(h.counts))
	h.mu.Lock()
	copy(counts, h.counts)
	sum := h.sum
	h.mu.Unlock()
	buckets := make(map[float64]uint64, len(h.bounds))
	var n uint64
	for i, b := range h.bounds {
		n += counts[i]
		buckets[b] = n
	}
	n += counts[len(h.bounds)]
	return prometheus.NewConstHistogramWithCreatedTimestamp(desc, n, sum, buckets, ct, service)
}

// serviceSet is the prometheus.Collector of every per-service family.
type serviceSet struct {
	mu     sync.Mutex
	byName map[string]*Service
}

// Describe implements prometheus.Collector.
func (ss *serviceSet) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{activationsDesc, acceptedDesc, rejectedDesc, instancesDesc, exitsDesc, durationDesc, spawnDesc, upDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. It holds the lock only to list
// the services, so a slow scrape never holds up a reload in the loop.
func (ss *serviceSet) Collect(ch chan<- prometheus.Metric) {
	ss.mu.Lock()
	svcs := make([]*Service, 0, len(ss.byName))
	for _, s := range ss.byName {
		svcs = append(svcs, s)
	}
	ss.mu.Unlock()
	for _, s := range svcs {
		s.collect(ch)
	}
}

// collect sends every exposed series of s.
func (s *Service) collect(ch chan<- prometheus.Metric) {
	ct := time.Unix(0, s.created)
	send := func(desc *prometheus.Desc, m prometheus.Metric, err error) {
		if err != nil {
			// Not a panic in the scrape: the rest of the scrape is still
			// worth having.
			m = prometheus.NewInvalidMetric(desc, err)
		}
		ch <- m
	}
	counter := func(desc *prometheus.Desc, n uint64, labels ...string) {
		m, err := prometheus.NewConstMetricWithCreatedTimestamp(desc, prometheus.CounterValue, float64(n), ct, labels...)
		send(desc, m, err)
	}
	gauge := func(desc *prometheus.Desc, v float64) {
		m, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, v, s.name)
		send(desc, m, err)
	}

	counter(activationsDesc, s.Activations.n.Load(), s.name)
	counter(acceptedDesc, s.Accepted.n.Load(), s.name)
	for i, reason := range Reasons {
		if n := s.rejected[i].Load(); n > 0 || eagerReason[i] {
			counter(rejectedDesc, n, s.name, reason)
		}
	}
	for i, outcome := range Outcomes {
		if n := s.exits[i].Load(); n > 0 || eagerOutcome[i] {
			counter(exitsDesc, n, s.name, outcome)
		}
	}
	gauge(instancesDesc, s.Instances.value())
	gauge(upDesc, s.Up.value())
	if h := s.spawnSeconds.Load(); h != nil {
		m, err := h.metric(spawnDesc, ct, s.name)
		send(spawnDesc, m, err)
	}
	if h := s.childDuration.Load(); h != nil {
		m, err := h.metric(durationDesc, ct, s.name)
		send(durationDesc, m, err)
	}
}
