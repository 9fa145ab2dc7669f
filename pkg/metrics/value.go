package metrics

import dto "github.com/prometheus/client_model/go"

// Value returns the value of the series name{labels} as a scrape sees it
// (a histogram's sample count), and whether the series is exposed at all.
// labels must name every label of the series. It gathers the whole
// registry, so it is for tests and tools, not for the event loop.
func (m *Metrics) Value(name string, labels map[string]string) (float64, bool) {
	mfs, _ := m.Registry.Gather() // what could be gathered is still right
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if !sameLabels(mt.GetLabel(), labels) {
				continue
			}
			switch {
			case mt.Counter != nil:
				return mt.Counter.GetValue(), true
			case mt.Gauge != nil:
				return mt.Gauge.GetValue(), true
			case mt.Histogram != nil:
				return float64(mt.Histogram.GetSampleCount()), true
			case mt.Untyped != nil:
				return mt.Untyped.GetValue(), true
			}
		}
	}
	return 0, false
}

func sameLabels(pairs []*dto.LabelPair, labels map[string]string) bool {
	if len(pairs) != len(labels) {
		return false
	}
	for _, p := range pairs {
		if v, ok := labels[p.GetName()]; !ok || v != p.GetValue() {
			return false
		}
	}
	return true
}
