package metrics

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// exposeChunk is how many services' series a scrape builds at a time. The
// Registry's Gather (what promhttp serves) builds every series of every
// family before writing any: with 10,000 services that was ~40 MB and
// 0.2-0.3 s per scrape, returned to the kernel only when superd next went
// idle. Streaming the per-service families a chunk at a time keeps a
// scrape to about a chunk's worth of memory. A variable for the tests.
var exposeChunk = 256

// serveMetrics is /metrics: what promhttp.HandlerFor(m.Registry,
// HandlerOpts{EnableOpenMetrics: true}) serves (tests compare the two),
// but for the text formats written as it is built. The families that are
// not per service (Go runtime, process, build and reload information) go
// through client_golang's registry and encoder as they are; the
// per-service families are built a chunk of services at a time with the
// same const metrics and written with the same encoder. A client asking
// for protobuf (Prometheus does first when native histograms are on) gets
// promhttp itself: a family there is one message, which chunks would
// split.
func (m *Metrics) serveMetrics(w http.ResponseWriter, r *http.Request) {
	format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultOpenMetricsAcceptedFormats()...)
	if t := format.FormatType(); t != expfmt.TypeTextPlain && t != expfmt.TypeOpenMetrics {
		m.whole.ServeHTTP(w, r)
		return
	}
	others, err := m.others.Gather()
	if err != nil {
		// As promhttp's default (HTTPErrorOnError).
		http.Error(w, "An error has occurred while serving metrics:\n\n"+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Add("Vary", "Accept")
	h.Add("Vary", "Accept-Encoding")
	h.Set("Content-Type", string(format))
	out := io.Writer(w)
	if contentEncoding(r.Header.Get("Accept-Encoding")) == "gzip" {
		h.Set("Content-Encoding", "gzip")
		gz := gzip.NewWriter(w)
		defer gz.Close()
		out = gz
	}
	var only map[string]bool // the name[] filter, as promhttp has it
	if names := r.URL.Query()["name[]"]; len(names) > 0 {
		only = make(map[string]bool, len(names))
		for _, n := range names {
			only[n] = true
		}
	}

	enc := expfmt.NewEncoder(out, format)
	svcs := m.services.sorted()
	// Both lists are sorted by name; a scrape lists families in that order.
	fams := families
	wanted := func(name string) bool { return only == nil || only[name] }
	for len(others) > 0 || len(fams) > 0 {
		var err error
		if len(fams) == 0 || (len(others) > 0 && others[0].GetName() < fams[0].name) {
			if mf := others[0]; wanted(mf.GetName()) {
				err = enc.Encode(mf)
			}
			others = others[1:]
		} else {
			if f := fams[0]; wanted(f.name) {
				err = f.stream(out, enc, format, svcs)
			}
			fams = fams[1:]
		}
		if err != nil {
			return // the client went away
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		c.Close() // OpenMetrics' "# EOF"
	}
}

// stream writes f's series of svcs: the first chunk that has any through
// enc, with the family's HELP and TYPE lines; later chunks encoded alike
// and written without them, so the family stays one block.
func (f *family) stream(out io.Writer, enc expfmt.Encoder, format expfmt.Format, svcs []*Service) error {
	headed := false
	var buf bytes.Buffer
	mf := &dto.MetricFamily{Name: &f.name, Help: &f.help, Type: f.typ.Enum()}
	flush := func() error {
		if len(mf.Metric) == 0 {
			return nil
		}
		defer func() { mf.Metric = mf.Metric[:0] }()
		if !headed {
			headed = true
			return enc.Encode(mf)
		}
		buf.Reset()
		// A second encoder on a buffer, never closed: its Close would
		// write OpenMetrics' "# EOF".
		if err := expfmt.NewEncoder(&buf, format).Encode(mf); err != nil {
			return err
		}
		_, err := out.Write(withoutComments(buf.Bytes()))
		return err
	}
	for m := range f.series(svcs) {
		dm := &dto.Metric{}
		if m.Write(dm) == nil {
			mf.Metric = append(mf.Metric, dm)
		}
		if len(mf.Metric) >= exposeChunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// withoutComments drops the leading comment lines (HELP, TYPE, UNIT) of an
// encoded family.
func withoutComments(b []byte) []byte {
	for len(b) > 0 && b[0] == '#' {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil
		}
		b = b[i+1:]
	}
	return b
}

// contentEncoding chooses "identity" or "gzip" for an Accept-Encoding
// header as promhttp does: the coding (or "*") with the highest quality,
// identity on a tie, names compared as written.
func contentEncoding(header string) string {
	best, bestQ := "identity", -1.0
	for _, offer := range []string{"identity", "gzip"} {
		for _, part := range strings.Split(header, ",") {
			coding, params, _ := strings.Cut(part, ";")
			coding = strings.TrimSpace(coding)
			if coding == "" || (coding != "*" && coding != offer) {
				continue
			}
			q := 1.0
			if k, v, ok := strings.Cut(params, "="); ok && strings.TrimSpace(k) == "q" {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
			if q > bestQ {
				best, bestQ = offer, q
			}
		}
	}
	if bestQ == 0 {
		return "identity" // nothing acceptable: promhttp then sends it as is
	}
	return best
}
