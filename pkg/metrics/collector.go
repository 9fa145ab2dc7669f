package metrics

import (
	"iter"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// family is one per-service family of SPEC §4. Its name, help text and
// labels are part of superd's interface: dashboards and alerts use them.
type family struct {
	name, help string
	typ        dto.MetricType
	desc       *prometheus.Desc
	// values are the values of the family's second label (reason,
	// outcome), in the order a scrape lists them (sorted); one empty value
	// for a family labelled by service only.
	values []string
	// metric is service s's series for label value v; false when s
	// exposes none (yet).
	metric func(f *family, s *Service, v string) (prometheus.Metric, bool)
}

func newFamily(name, help string, typ dto.MetricType, label string, values []string,
	metric func(f *family, s *Service, v string) (prometheus.Metric, bool)) *family {
	labels := []string{"service"}
	if label != "" {
		labels = append(labels, label)
	}
	f := &family{name: name, help: help, typ: typ, desc: prometheus.NewDesc(name, help, labels, nil), metric: metric}
	f.values = []string{""}
	if values != nil {
		f.values = slices.Sorted(slices.Values(values))
	}
	return f
}

// series yields f's series of svcs in the order a scrape lists them:
// by second-label value, then by service.
func (f *family) series(svcs []*Service) iter.Seq[prometheus.Metric] {
	return func(yield func(prometheus.Metric) bool) {
		for _, v := range f.values {
			for _, s := range svcs {
				if m, ok := f.metric(f, s, v); ok && !yield(m) {
					return
				}
			}
		}
	}
}

// counter and gauge are const metrics of s for f, or false if invalid
// (which a validated service name never is).
func (f *family) counter(s *Service, n uint64, labels ...string) (prometheus.Metric, bool) {
	m, err := prometheus.NewConstMetricWithCreatedTimestamp(f.desc, prometheus.CounterValue, float64(n), time.Unix(0, s.created), labels...)
	return m, err == nil
}

func (f *family) gauge(s *Service, v float64) (prometheus.Metric, bool) {
	m, err := prometheus.NewConstMetric(f.desc, prometheus.GaugeValue, v, s.name)
	return m, err == nil
}

// counted is a counter of s for label value v, exposed once it counted
// something or from the start if eager.
func (f *family) counted(s *Service, n uint64, eager bool, v string) (prometheus.Metric, bool) {
	if n == 0 && !eager {
		return nil, false
	}
	return f.counter(s, n, s.name, v)
}

func (f *family) histogram(s *Service, h *histogram) (prometheus.Metric, bool) {
	if h == nil {
		return nil, false
	}
	m, err := h.metric(f.desc, time.Unix(0, s.created), s.name)
	return m, err == nil
}

// families are the per-service families, sorted by name.
var families = []*family{
	newFamily("superd_activations_total", "Children started, per service.",
		dto.MetricType_COUNTER, "", nil,
		func(f *family, s *Service, _ string) (prometheus.Metric, bool) {
			return f.counter(s, s.Activations.n.Load(), s.name)
		}),
	newFamily("superd_child_duration_seconds", "How long children ran, per service.",
		dto.MetricType_HISTOGRAM, "", nil,
		func(f *family, s *Service, _ string) (prometheus.Metric, bool) {
			return f.histogram(s, s.childDuration.Load())
		}),
	newFamily("superd_child_exits_total", "Children that exited, per service and outcome (success, failure, signal, stopped).",
		dto.MetricType_COUNTER, "outcome", Outcomes,
		func(f *family, s *Service, v string) (prometheus.Metric, bool) {
			i := outcomeIndex(v)
			return f.counted(s, s.exits[i].Load(), eagerOutcome[i], v)
		}),
	newFamily("superd_connections_accepted_total", "Connections accepted by superd (accept mode), per service.",
		dto.MetricType_COUNTER, "", nil,
		func(f *family, s *Service, _ string) (prometheus.Metric, bool) {
			return f.counter(s, s.Accepted.n.Load(), s.name)
		}),
	newFamily("superd_connections_rejected_total", "Connections or activations refused, per service and reason.",
		dto.MetricType_COUNTER, "reason", Reasons,
		func(f *family, s *Service, v string) (prometheus.Metric, bool) {
			i := reasonIndex(v)
			return f.counted(s, s.rejected[i].Load(), eagerReason[i], v)
		}),
	newFamily("superd_instances", "Children running now, per service.",
		dto.MetricType_GAUGE, "", nil,
		func(f *family, s *Service, _ string) (prometheus.Metric, bool) {
			return f.gauge(s, s.Instances.value())
		}),
	newFamily("superd_service_disabled", "1 while the service is disabled on purpose (disabled: true, or removed by a reload while its children finish); absent otherwise.",
		dto.MetricType_GAUGE, "", nil,
		func(f *family, s *Service, _ string) (prometheus.Metric, bool) {
			if s.state.Load()&disabledBit == 0 {
				return nil, false
			}
			return f.gauge(s, 1)
		}),
	newFamily("superd_service_up", "1 while the service listens; 0 while it is failed, disabled or paused.",
		dto.MetricType_GAUGE, "", nil,
		func(f *family, s *Service, _ string) (prometheus.Metric, bool) {
			return f.gauge(s, float64(s.state.Load()&upBit))
		}),
	newFamily("superd_spawn_seconds", "Time from a socket being ready (a connection accepted, or a wait-mode socket readable) to the child running.",
		dto.MetricType_HISTOGRAM, "", nil,
		func(f *family, s *Service, _ string) (prometheus.Metric, bool) {
			return f.histogram(s, s.spawnSeconds.Load())
		}),
}

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
	for _, f := range families {
		ch <- f.desc
	}
}

// Collect implements prometheus.Collector.
func (ss *serviceSet) Collect(ch chan<- prometheus.Metric) {
	svcs := ss.sorted()
	for _, f := range families {
		for m := range f.series(svcs) {
			ch <- m
		}
	}
}

// sorted lists the services by name, the order of a scrape. It holds the
// lock only to list them, so a slow scrape never holds up a reload in the
// loop.
func (ss *serviceSet) sorted() []*Service {
	ss.mu.Lock()
	svcs := make([]*Service, 0, len(ss.byName))
	for _, s := range ss.byName {
		svcs = append(svcs, s)
	}
	ss.mu.Unlock()
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].name < svcs[j].name })
	return svcs
}
