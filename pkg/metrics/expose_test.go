package metrics

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

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

// populatedN is a Metrics with n services, each with a different mix of
// events.
func populatedN(n int) *Metrics {
	m := New("test")
	for i := 0; i < n; i++ {
		s := m.ForService("svc-" + strconv.Itoa((i*7)%max(n, 1)))
		for k := 0; k < i; k++ {
			s.Activations.Inc()
		}
		if i%2 == 0 {
			s.Accepted.Inc()
			s.SetUp(true, false)
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

// acceptHeaders are Accept headers a scraper may send.
var acceptHeaders = []string{
	"", // text
	"text/plain;version=0.0.4",
	"text/plain;version=1.0.0;escaping=allow-utf-8",
	"application/openmetrics-text;version=1.0.0",
	"application/openmetrics-text;version=0.0.1;escaping=dots",
	// What Prometheus sends by default, and with native histograms on
	// (protobuf first).
	"application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
	"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
	"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
}

func TestStreamedScrapeMatchesPromhttp(t *testing.T) {
	defer func(n int) { exposeChunk = n }(exposeChunk)
	for _, chunk := range []int{1, 2, 3, 5, 256} {
		for _, services := range []int{0, 1, 4, 8, 23} {
			exposeChunk = chunk
			m := populatedN(services)
			ours := m.Handler(nil)
			ref := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true})
			for _, accept := range acceptHeaders {
				what := fmt.Sprintf("chunk %d, %d services, Accept %q", chunk, services, accept)
				got, gh := scrape(t, ours, "/metrics", accept, "")
				want, wh := scrape(t, ref, "/metrics", accept, "")
				for _, k := range []string{"Content-Type", "Content-Encoding"} {
					if gh.Get(k) != wh.Get(k) {
						t.Errorf("%s: %s %q, promhttp %q", what, k, gh.Get(k), wh.Get(k))
					}
				}
				if !slices.Equal(gh.Values("Vary"), wh.Values("Vary")) {
					t.Errorf("%s: Vary %q, promhttp %q", what, gh.Values("Vary"), wh.Values("Vary"))
				}
				format := expfmt.Format(gh.Get("Content-Type"))
				if names := familyNames(t, got, format); !slices.Equal(names, familyNames(t, want, format)) {
					t.Errorf("%s: families %v, promhttp %v", what, names, familyNames(t, want, format))
				}
				if t := format.FormatType(); t != expfmt.TypeTextPlain && t != expfmt.TypeOpenMetrics {
					continue // protobuf: promhttp's own answer
				}
				if stable(got) != stable(want) {
					t.Errorf("%s: exposition differs from promhttp's\n--- ours\n%s\n--- promhttp\n%s", what, stable(got), stable(want))
				}
				if om := format.FormatType() == expfmt.TypeOpenMetrics; om != strings.HasSuffix(got, "# EOF\n") {
					t.Errorf("%s: ends %q", what, got[max(0, len(got)-20):])
				}
			}
		}
	}
}

// familyNames decodes body and lists its families in order, each once:
// a family split in two would show twice.
func familyNames(t *testing.T, body string, format expfmt.Format) []string {
	t.Helper()
	if format.FormatType() == expfmt.TypeOpenMetrics || format.FormatType() == expfmt.TypeTextPlain {
		var names []string
		for _, l := range strings.Split(body, "\n") {
			if rest, ok := strings.CutPrefix(l, "# TYPE "); ok {
				names = append(names, strings.Fields(rest)[0])
			}
		}
		return names
	}
	if format.FormatType() != expfmt.TypeProtoDelim {
		return nil // protobuf text formats: compared as promhttp's anyway
	}
	var names []string
	dec := expfmt.NewDecoder(strings.NewReader(body), format)
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err == io.EOF {
			return names
		} else if err != nil {
			t.Fatalf("decoding %s: %v", format, err)
		}
		names = append(names, mf.GetName())
	}
}

func TestFamiliesAreSortedByName(t *testing.T) {
	// serveMetrics merges them with the gathered families by name.
	for i := 1; i < len(families); i++ {
		if families[i-1].name >= families[i].name {
			t.Errorf("families: %s before %s", families[i-1].name, families[i].name)
		}
	}
}

func TestContentEncodingAsPromhttp(t *testing.T) {
	m := populatedN(3)
	ours := m.Handler(nil)
	ref := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true})
	for _, enc := range []string{"", "gzip", "gzip;q=0.5, identity", "*;q=0.5, identity", "br, *", "GZIP", "gzip;q=0", "identity;q=0, gzip;q=0", "deflate, gzip;q=1.0, *;q=0.5"} {
		_, gh := scrape(t, ours, "/metrics", "", enc)
		_, wh := scrape(t, ref, "/metrics", "", enc)
		if gh.Get("Content-Encoding") != wh.Get("Content-Encoding") {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, promhttp %q", enc, gh.Get("Content-Encoding"), wh.Get("Content-Encoding"))
		}
	}
}

// TestScrapeWhileServicesComeAndGo runs scrapes while services are added,
// counted and forgotten (bounded: 50 scrapes); with -race it checks the
// streaming path's locking.
func TestScrapeWhileServicesComeAndGo(t *testing.T) {
	defer func(n int) { exposeChunk = n }(exposeChunk)
	exposeChunk = 3
	m := populatedN(10)
	h := m.Handler(nil)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			name := "churn-" + strconv.Itoa(i%7)
			s := m.ForService(name)
			s.Activations.Inc()
			s.ObserveSpawn(1e-4)
			s.Exited(OutcomeSuccess)
			if i%2 == 1 {
				m.Forget(name)
			}
		}
	}()
	for i := 0; i < 50; i++ {
		body, hdr := scrape(t, h, "/metrics", "", "") // text: OpenMetrics names a counter without _total, so go_memstats_alloc_bytes shows twice there
		if names := familyNames(t, body, expfmt.Format(hdr.Get("Content-Type"))); len(names) != len(slices.Compact(slices.Clone(names))) {
			t.Fatalf("a family appears twice: %v", names)
		}
	}
	close(done)
	wg.Wait()
}

func TestStreamedScrapeGzipAndNameFilter(t *testing.T) {
	m := populatedN(23)
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
		s.SetUp(true, false)
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
