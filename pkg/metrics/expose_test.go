package metrics

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// populated is a Metrics with services in no particular order, each with
// a different mix of events, so that every per-service family has series
// in several chunks.
func populated() *Metrics {
	m := New("test")
	for i := 0; i < 23; i++ {
		s := m.ForService("svc-" + strconv.Itoa((i*7)%23))
		for k := 0; k < i; k++ {
			s.Activations.Inc()
		}
		if i%2 == 0 {
			s.Accepted.Inc()
			s.Up.Set(1)
			s.ObserveSpawn(float64(i) * 1e-4)
		}
		if i%3 == 0 {
			s.Instances.Inc()
			s.Rejected(Reasons[i%len(Reasons)])
			s.ObserveDuration(float64(i))
		}
		s.Exited(Outcomes[i%len(Outcomes)])
	}
	return m
}

// scrape GETs path from h with the given Accept and Accept-Encoding.
func scrape(t *testing.T, h http.Handler, path, accept, encoding string) (string, http.Header) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if encoding != "" {
		req.Header.Set("Accept-Encoding", encoding)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	body := rec.Body.String()
	if rec.Header().Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		body = string(b)
	}
	return body, rec.Header()
}

// stable keeps what two scrapes must agree on: every line of superd's
// families, and the HELP/TYPE lines of all (the Go and process
// collectors' values move between scrapes).
func stable(body string) string {
	var keep []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "superd_") || strings.HasPrefix(l, "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func TestStreamedScrapeMatchesPromhttp(t *testing.T) {
	defer func(n int) { exposeChunk = n }(exposeChunk)
	exposeChunk = 4 // many chunks per family
	m := populated()
	ours := m.Handler(nil)
	ref := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true})
	for _, accept := range []string{
		"", // text
		"text/plain;version=0.0.4",
		"application/openmetrics-text;version=1.0.0",
		// What Prometheus sends.
		"application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
	} {
		got, gh := scrape(t, ours, "/metrics", accept, "")
		want, wh := scrape(t, ref, "/metrics", accept, "")
		if gh.Get("Content-Type") != wh.Get("Content-Type") {
			t.Errorf("Accept %q: Content-Type %q, promhttp %q", accept, gh.Get("Content-Type"), wh.Get("Content-Type"))
		}
		if stable(got) != stable(want) {
			t.Errorf("Accept %q: exposition differs from promhttp's\n--- ours\n%s\n--- promhttp\n%s", accept, stable(got), stable(want))
		}
		if strings.Count(got, "# TYPE superd_child_exits") != 1 {
			t.Errorf("Accept %q: a family is not one block:\n%s", accept, got)
		}
		if om := strings.Contains(accept, "openmetrics"); om != strings.HasSuffix(got, "# EOF\n") {
			t.Errorf("Accept %q: ends %q", accept, got[max(0, len(got)-20):])
		}
	}
}

func TestStreamedScrapeGzipAndNameFilter(t *testing.T) {
	m := populated()
	h := m.Handler(nil)
	plain, _ := scrape(t, h, "/metrics", "", "")
	zipped, hdr := scrape(t, h, "/metrics", "", "gzip")
	if hdr.Get("Content-Encoding") != "gzip" {
		t.Errorf("Accept-Encoding: gzip answered with Content-Encoding %q", hdr.Get("Content-Encoding"))
	}
	if stable(zipped) != stable(plain) {
		t.Errorf("gzip scrape differs from the plain one")
	}
	if _, hdr := scrape(t, h, "/metrics", "", "gzip;q=0"); hdr.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 answered with Content-Encoding %q", hdr.Get("Content-Encoding"))
	}

	got, _ := scrape(t, h, "/metrics?name[]=superd_instances&name[]=superd_build_info", "", "")
	var names []string
	for _, l := range strings.Split(got, "\n") {
		if name, ok := strings.CutPrefix(l, "# TYPE "); ok {
			names = append(names, strings.Fields(name)[0])
		}
	}
	if strings.Join(names, " ") != "superd_build_info superd_instances" {
		t.Errorf("name[] filter: families %v, want superd_build_info superd_instances", names)
	}
}

// discard is a ResponseWriter that keeps nothing.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkServe10000Services is one /metrics scrape with 10,000 services
// configured: as superd serves it, and as promhttp over the Registry would.
func BenchmarkServe10000Services(b *testing.B) {
	m := New("test")
	for i := 0; i < 10000; i++ {
		s := m.ForService("service-" + strconv.Itoa(i))
		s.Up.Set(1)
		if i%10 == 0 {
			s.ObserveSpawn(0.0003)
			s.ObserveDuration(0.02)
			s.Exited(OutcomeSuccess)
		}
	}
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"streamed", m.Handler(nil)},
		{"promhttp", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/metrics", nil)
			req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				bc.h.ServeHTTP(&discard{h: http.Header{}}, req)
			}
		})
	}
}
