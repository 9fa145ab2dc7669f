package metrics

import (
	"encoding/json"
	"net/http"
	"time"
)

// loopTimeout bounds how long an admin request waits for the event loop; a
// loop that does not answer in time is reported unhealthy rather than
// waited on.
const loopTimeout = 2 * time.Second

// Loop is what the admin endpoints ask of the running server.
type Loop interface {
	// Ping round-trips through the event loop.
	Ping(timeout time.Duration) error
	// StatusJSON returns a JSON-encodable snapshot of every service.
	StatusJSON(timeout time.Duration) (any, error)
}

// Handler serves /metrics, /healthz and /status.
func (m *Metrics) Handler(loop Loop) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", m.serveMetrics)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := loop.Ping(loopTimeout); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := loop.StatusJSON(loopTimeout)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{"services": st})
	})
	return mux
}
