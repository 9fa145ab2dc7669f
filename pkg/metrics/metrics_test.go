package metrics

import (
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// serviceFamilies are the per-service families of SPEC §4.
var serviceFamilies = []string{
	"superd_activations_total",
	"superd_connections_accepted_total",
	"superd_connections_rejected_total",
	"superd_instances",
	"superd_child_exits_total",
	"superd_child_duration_seconds",
	"superd_spawn_seconds",
	"superd_service_disabled",
	"superd_service_up",
}

func TestExposition(t *testing.T) {
	m := New("test")
	busy := m.ForService("busy")
	m.ForService("idle")
	busy.Activations.Inc()
	busy.Activations.Inc()
	busy.Accepted.Inc()
	busy.Accepted.Inc()
	busy.Accepted.Inc()
	busy.Instances.Inc()
	busy.Instances.Inc()
	busy.Instances.Dec()
	busy.SetUp(true, false)
	busy.Rejected(ReasonMaxInstances)
	busy.Exited(OutcomeSuccess)
	busy.ObserveSpawn(0.0003)
	busy.ObserveSpawn(2.5) // on a bound: in that bucket
	busy.ObserveDuration(7000)

	want := `
# HELP superd_activations_total Children started, per service.
# TYPE superd_activations_total counter
superd_activations_total{service="busy"} 2
superd_activations_total{service="idle"} 0
# HELP superd_connections_accepted_total Connections accepted by superd (accept mode), per service.
# TYPE superd_connections_accepted_total counter
superd_connections_accepted_total{service="busy"} 3
superd_connections_accepted_total{service="idle"} 0
# HELP superd_connections_rejected_total Connections or activations refused, per service and reason.
# TYPE superd_connections_rejected_total counter
superd_connections_rejected_total{reason="max_instances",service="busy"} 1
superd_connections_rejected_total{reason="spawn_error",service="busy"} 0
superd_connections_rejected_total{reason="spawn_error",service="idle"} 0
# HELP superd_instances Children running now, per service.
# TYPE superd_instances gauge
superd_instances{service="busy"} 1
superd_instances{service="idle"} 0
# HELP superd_child_exits_total Children that exited, per service and outcome (success, failure, signal, stopped).
# TYPE superd_child_exits_total counter
superd_child_exits_total{outcome="failure",service="busy"} 0
superd_child_exits_total{outcome="failure",service="idle"} 0
superd_child_exits_total{outcome="success",service="busy"} 1
# HELP superd_child_duration_seconds How long children ran, per service.
# TYPE superd_child_duration_seconds histogram
superd_child_duration_seconds_bucket{service="busy",le="0.001"} 0
superd_child_duration_seconds_bucket{service="busy",le="0.005"} 0
superd_child_duration_seconds_bucket{service="busy",le="0.01"} 0
superd_child_duration_seconds_bucket{service="busy",le="0.05"} 0
superd_child_duration_seconds_bucket{service="busy",le="0.1"} 0
superd_child_duration_seconds_bucket{service="busy",le="0.5"} 0
superd_child_duration_seconds_bucket{service="busy",le="1"} 0
superd_child_duration_seconds_bucket{service="busy",le="5"} 0
superd_child_duration_seconds_bucket{service="busy",le="10"} 0
superd_child_duration_seconds_bucket{service="busy",le="30"} 0
superd_child_duration_seconds_bucket{service="busy",le="60"} 0
superd_child_duration_seconds_bucket{service="busy",le="300"} 0
superd_child_duration_seconds_bucket{service="busy",le="900"} 0
superd_child_duration_seconds_bucket{service="busy",le="3600"} 0
superd_child_duration_seconds_bucket{service="busy",le="14400"} 1
superd_child_duration_seconds_bucket{service="busy",le="+Inf"} 1
superd_child_duration_seconds_sum{service="busy"} 7000
superd_child_duration_seconds_count{service="busy"} 1
# HELP superd_spawn_seconds Time from a socket being ready (a connection accepted, or a wait-mode socket readable) to the child running.
# TYPE superd_spawn_seconds histogram
superd_spawn_seconds_bucket{service="busy",le="2.5e-05"} 0
superd_spawn_seconds_bucket{service="busy",le="5e-05"} 0
superd_spawn_seconds_bucket{service="busy",le="0.0001"} 0
superd_spawn_seconds_bucket{service="busy",le="0.00025"} 0
superd_spawn_seconds_bucket{service="busy",le="0.0005"} 1
superd_spawn_seconds_bucket{service="busy",le="0.001"} 1
superd_spawn_seconds_bucket{service="busy",le="0.0025"} 1
superd_spawn_seconds_bucket{service="busy",le="0.005"} 1
superd_spawn_seconds_bucket{service="busy",le="0.01"} 1
superd_spawn_seconds_bucket{service="busy",le="0.025"} 1
superd_spawn_seconds_bucket{service="busy",le="0.05"} 1
superd_spawn_seconds_bucket{service="busy",le="0.1"} 1
superd_spawn_seconds_bucket{service="busy",le="0.25"} 1
superd_spawn_seconds_bucket{service="busy",le="0.5"} 1
superd_spawn_seconds_bucket{service="busy",le="1"} 1
superd_spawn_seconds_bucket{service="busy",le="2.5"} 2
superd_spawn_seconds_bucket{service="busy",le="+Inf"} 2
superd_spawn_seconds_sum{service="busy"} 2.5003
superd_spawn_seconds_count{service="busy"} 2
# HELP superd_service_up 1 while the service listens; 0 while it is failed, disabled or paused.
# TYPE superd_service_up gauge
superd_service_up{service="busy"} 1
superd_service_up{service="idle"} 0
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), serviceFamilies...); err != nil {
		t.Error(err)
	}
}

func TestNewServiceHasOnlyItsEagerSeries(t *testing.T) {
	m := New("test")
	m.ForService("new")
	got := seriesOf(t, m, "new")
	want := []string{
		"superd_activations_total{service=new}",
		"superd_child_exits_total{outcome=failure,service=new}",
		"superd_connections_accepted_total{service=new}",
		"superd_connections_rejected_total{reason=spawn_error,service=new}",
		"superd_instances{service=new}",
		"superd_service_up{service=new}",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("series of a new service:\n got %v\nwant %v", got, want)
	}
	for _, s := range got {
		if v, _ := m.Value(strings.SplitN(s, "{", 2)[0], labelsOf(s)); v != 0 {
			t.Errorf("%s = %v, want 0", s, v)
		}
	}
}

// superd_service_disabled exists exactly while a service is down on
// purpose, and superd_service_up says 0 then.
func TestDisabledSeriesOnlyWhileDisabled(t *testing.T) {
	m := New("test")
	s := m.ForService("s")
	check := func(step string, up float64, disabled bool) {
		t.Helper()
		if v, ok := m.Value("superd_service_up", map[string]string{"service": "s"}); !ok || v != up {
			t.Errorf("%s: superd_service_up = %v, %v; want %v, true", step, v, ok, up)
		}
		v, ok := m.Value("superd_service_disabled", map[string]string{"service": "s"})
		if ok != disabled || (ok && v != 1) {
			t.Errorf("%s: superd_service_disabled = %v, exposed %v; want exposed %v with 1", step, v, ok, disabled)
		}
	}
	check("new", 0, false)
	s.SetUp(true, false)
	check("listening", 1, false)
	s.SetUp(false, true)
	check("disabled", 0, true)
	s.SetUp(false, false)
	check("failed", 0, false)
	s.SetUp(false, true)
	s.SetUp(true, false)
	check("enabled again", 1, false)
}

func TestEveryReasonAndOutcomeAppearsAtItsFirstEvent(t *testing.T) {
	m := New("test")
	s := m.ForService("s")
	for _, r := range Reasons {
		s.Rejected(r)
		if v, ok := m.Value("superd_connections_rejected_total", map[string]string{"service": "s", "reason": r}); !ok || v != 1 {
			t.Errorf("rejected %s = %v, %v; want 1, true", r, v, ok)
		}
	}
	for _, o := range Outcomes {
		s.Exited(o)
		if v, ok := m.Value("superd_child_exits_total", map[string]string{"service": "s", "outcome": o}); !ok || v != 1 {
			t.Errorf("exits %s = %v, %v; want 1, true", o, v, ok)
		}
	}
	// A value superd does not use is not counted, and fails nothing.
	s.Rejected("bogus")
	s.Exited("bogus")
	if got := len(seriesOf(t, m, "s")); got != 4+len(Reasons)+len(Outcomes) {
		t.Errorf("%d series, want %d", got, 4+len(Reasons)+len(Outcomes))
	}
}

func TestIndexesFollowReasonsAndOutcomes(t *testing.T) {
	if len(Reasons) != numReasons || len(Outcomes) != numOutcomes {
		t.Fatalf("numReasons, numOutcomes = %d, %d; want %d, %d", numReasons, numOutcomes, len(Reasons), len(Outcomes))
	}
	for i, r := range Reasons {
		if got := reasonIndex(r); got != i {
			t.Errorf("reasonIndex(%q) = %d, want %d", r, got, i)
		}
	}
	for i, o := range Outcomes {
		if got := outcomeIndex(o); got != i {
			t.Errorf("outcomeIndex(%q) = %d, want %d", o, got, i)
		}
	}
}

func TestForgetRemovesEverySeriesOfTheName(t *testing.T) {
	m := New("test")
	gone := m.ForService("gone")
	m.ForService("kept").Activations.Inc()
	gone.Activations.Inc()
	gone.Rejected(ReasonAccess)
	gone.Exited(OutcomeSignal)
	gone.ObserveSpawn(0.001)
	gone.ObserveDuration(1)
	m.Forget("gone")
	if got := seriesOf(t, m, "gone"); len(got) != 0 {
		t.Errorf("series left after Forget: %v", got)
	}
	if v, _ := m.Value("superd_activations_total", map[string]string{"service": "kept"}); v != 1 {
		t.Errorf("kept's activations = %v after forgetting another service, want 1", v)
	}
	// What a forgotten Service still counts is not seen, and the name
	// starts again from 0.
	gone.Activations.Inc()
	again := m.ForService("gone")
	if again == gone {
		t.Error("ForService after Forget returned the forgotten Service")
	}
	if got := len(seriesOf(t, m, "gone")); got != 6 {
		t.Errorf("%d series of the name made again, want its 6 eager ones", got)
	}
	if v, _ := m.Value("superd_activations_total", map[string]string{"service": "gone"}); v != 0 {
		t.Errorf("activations of the name made again = %v, want 0", v)
	}
}

func TestCountsSurviveForServiceAgain(t *testing.T) {
	m := New("test")
	first := m.ForService("svc")
	first.Activations.Inc()
	first.Instances.Inc()
	first.Rejected(ReasonRateLimit)
	first.ObserveSpawn(0.01)
	// A reload that changes the service's config makes it again.
	second := m.ForService("svc")
	second.Activations.Inc()
	second.Rejected(ReasonRateLimit)
	second.ObserveSpawn(0.01)
	first.Instances.Dec() // the old config's child exits
	for name, want := range map[string]float64{
		"superd_activations_total": 2,
		"superd_instances":         0,
		"superd_spawn_seconds":     2,
	} {
		if v, _ := m.Value(name, map[string]string{"service": "svc"}); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if v, _ := m.Value("superd_connections_rejected_total", map[string]string{"service": "svc", "reason": ReasonRateLimit}); v != 2 {
		t.Errorf("rejected rate_limit = %v, want 2", v)
	}
}

// The buckets are those client_golang's own histogram would fill, values
// on a bound, above every bound, +Inf and NaN included.
func TestHistogramMatchesClientGolang(t *testing.T) {
	m := New("test")
	s := m.ForService("h")
	ref := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ref", Buckets: spawnBuckets})
	for _, v := range []float64{-1, 0, 25e-6, 26e-6, 0.0005, 0.0007, 1, 2.5, 3, math.Inf(1), 0.1} {
		s.ObserveSpawn(v)
		ref.Observe(v)
	}
	compare := func(when string) {
		t.Helper()
		var want dto.Metric
		if err := ref.Write(&want); err != nil {
			t.Fatal(err)
		}
		w := want.GetHistogram()
		got := gatherOne(t, m, "superd_spawn_seconds", "h").GetHistogram()
		sameSum := got.GetSampleSum() == w.GetSampleSum() || math.IsNaN(got.GetSampleSum()) && math.IsNaN(w.GetSampleSum())
		if got.GetSampleCount() != w.GetSampleCount() || !sameSum {
			t.Errorf("%s: count, sum = %d, %v; want %d, %v", when, got.GetSampleCount(), got.GetSampleSum(), w.GetSampleCount(), w.GetSampleSum())
		}
		if len(got.GetBucket()) != len(w.GetBucket()) {
			t.Fatalf("%s: %d buckets, want %d", when, len(got.GetBucket()), len(w.GetBucket()))
		}
		for i, b := range w.GetBucket() {
			g := got.GetBucket()[i]
			if g.GetUpperBound() != b.GetUpperBound() || g.GetCumulativeCount() != b.GetCumulativeCount() {
				t.Errorf("%s: bucket %d = le %v: %d; want le %v: %d", when, i, g.GetUpperBound(), g.GetCumulativeCount(), b.GetUpperBound(), b.GetCumulativeCount())
			}
		}
	}
	compare("finite and +Inf")
	s.ObserveSpawn(math.NaN())
	ref.Observe(math.NaN())
	compare("NaN")
}

func TestCountersHaveTheServicesCreatedTimestamp(t *testing.T) {
	m := New("test")
	s := m.ForService("s")
	s.Rejected(ReasonAccess)
	s.ObserveDuration(1)
	eager := gatherOne(t, m, "superd_activations_total", "s").GetCounter().GetCreatedTimestamp()
	lazy := gatherOne(t, m, "superd_connections_rejected_total", "s").GetCounter().GetCreatedTimestamp()
	hist := gatherOne(t, m, "superd_child_duration_seconds", "s").GetHistogram().GetCreatedTimestamp()
	if eager == nil || eager.AsTime().UnixNano() != s.created || lazy.AsTime() != eager.AsTime() || hist.AsTime() != eager.AsTime() {
		t.Errorf("created timestamps %v, %v, %v; want each the service's, %d", eager, lazy, hist, s.created)
	}
}

// The loop counts while scrapes read; run with -race.
func TestScrapeWhileCounting(t *testing.T) {
	m := New("test")
	s := m.ForService("s")
	const n = 2000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			s.Activations.Inc()
			s.Instances.Inc()
			s.SetUp(i%2 == 1, false)
			s.Rejected(ReasonAccess)
			s.Exited(OutcomeStopped)
			s.ObserveSpawn(0.001)
			s.ObserveDuration(1)
			s.Instances.Dec()
			if i%100 == 0 {
				m.ForService("other-" + strconv.Itoa(i))
				m.Forget("other-" + strconv.Itoa(i-100))
			}
		}
	}()
	for i := 0; i < 20; i++ {
		if _, err := m.Registry.Gather(); err != nil {
			t.Fatal(err)
		}
		h := gatherOne(t, m, "superd_spawn_seconds", "s").GetHistogram()
		if h != nil {
			if b := h.GetBucket(); b[len(b)-1].GetCumulativeCount() != h.GetSampleCount() {
				t.Errorf("a scrape saw %d observations in its buckets and a count of %d", b[len(b)-1].GetCumulativeCount(), h.GetSampleCount())
			}
		}
	}
	wg.Wait()
	for name, want := range map[string]float64{
		"superd_activations_total":      n,
		"superd_instances":              0,
		"superd_spawn_seconds":          n,
		"superd_child_duration_seconds": n,
	} {
		if v, _ := m.Value(name, map[string]string{"service": "s"}); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
}

func TestCountingDoesNotAllocate(t *testing.T) {
	m := New("test")
	s := m.ForService("s")
	s.ObserveSpawn(1)
	s.ObserveDuration(1)
	allocs := testing.AllocsPerRun(100, func() {
		s.Activations.Inc()
		s.Accepted.Inc()
		s.Instances.Inc()
		s.Instances.Dec()
		s.SetUp(true, false)
		s.Rejected(ReasonRateLimit)
		s.Exited(OutcomeSuccess)
		s.ObserveSpawn(0.001)
		s.ObserveDuration(10)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per round of events, want 0", allocs)
	}
}

func TestLint(t *testing.T) {
	m := New("test")
	s := m.ForService("s")
	s.Rejected(ReasonAccess)
	s.ObserveSpawn(1)
	s.ObserveDuration(1)
	problems, err := testutil.GatherAndLint(m.Registry, serviceFamilies...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestValue(t *testing.T) {
	m := New("test")
	m.ReloadSuccessful.Set(1)
	if v, ok := m.Value("superd_config_last_reload_successful", nil); !ok || v != 1 {
		t.Errorf("reload successful = %v, %v; want 1, true", v, ok)
	}
	m.ForService("s")
	if _, ok := m.Value("superd_activations_total", map[string]string{"service": "t"}); ok {
		t.Error("a series of an unknown service was found")
	}
	if _, ok := m.Value("superd_connections_rejected_total", map[string]string{"service": "s"}); ok {
		t.Error("a series was found by part of its labels")
	}
}

// heapPerService is what a configured, idle service costs in heap bytes
// once made: n services over the heap they add.
func heapPerService(n int) float64 {
	names := make([]string, n)
	for i := range names {
		names[i] = "service-" + strconv.Itoa(i)
	}
	m := New("test")
	svcs := make([]*Service, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i, name := range names {
		svcs[i] = m.ForService(name)
		svcs[i].SetUp(true, false)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(svcs)
	runtime.KeepAlive(m)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// A host may configure ten thousand services; the vectors this replaced
// cost about 3.2 KiB of heap for each.
func TestHeapPerService(t *testing.T) {
	const budget = 512
	if got := heapPerService(10000); got > budget {
		t.Errorf("a configured service costs %.0f heap bytes, want at most %d", got, budget)
	} else {
		t.Logf("a configured service costs %.0f heap bytes", got)
	}
}

func BenchmarkForService(b *testing.B) {
	names := make([]string, b.N)
	for i := range names {
		names[i] = "service-" + strconv.Itoa(i)
	}
	m := New("test")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.ForService(names[i])
	}
	b.StopTimer()
	b.ReportMetric(heapPerService(10000), "heap-B/service")
}

func BenchmarkEvents(b *testing.B) {
	s := New("test").ForService("s")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.Accepted.Inc()
		s.Activations.Inc()
		s.Instances.Inc()
		s.ObserveSpawn(0.0003)
		s.Instances.Dec()
		s.ObserveDuration(0.02)
		s.Exited(OutcomeSuccess)
	}
}

func BenchmarkScrape10000Services(b *testing.B) {
	m := New("test")
	for i := 0; i < 10000; i++ {
		s := m.ForService("service-" + strconv.Itoa(i))
		s.SetUp(true, false)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Registry.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// seriesOf lists the series of service, as name{label=value,...} with the
// labels sorted.
func seriesOf(t *testing.T, m *Metrics, service string) []string {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			var labels []string
			mine := false
			for _, l := range mt.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
				mine = mine || l.GetName() == "service" && l.GetValue() == service
			}
			if mine {
				out = append(out, mf.GetName()+"{"+strings.Join(labels, ",")+"}")
			}
		}
	}
	return out
}

// labelsOf parses what seriesOf writes.
func labelsOf(series string) map[string]string {
	labels := map[string]string{}
	inner := strings.TrimSuffix(strings.SplitN(series, "{", 2)[1], "}")
	for _, kv := range strings.Split(inner, ",") {
		k, v, _ := strings.Cut(kv, "=")
		labels[k] = v
	}
	return labels
}

// gatherOne is the series of family name for service; nil if none.
func gatherOne(t *testing.T, m *Metrics, name, service string) *dto.Metric {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "service" && l.GetValue() == service {
					return mt
				}
			}
		}
	}
	return nil
}
