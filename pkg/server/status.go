package server

import (
	"slices"
	"strings"
	"time"
)

// ServiceStatus is one service as /status and `superd status` show it.
type ServiceStatus struct {
	Name        string        `json:"name"`
	Mode        string        `json:"mode"`
	Sockets     []string      `json:"sockets"`
	State       string        `json:"state"`
	Instances   int           `json:"instances"`
	Activations uint64        `json:"activations"`
	Children    []ChildStatus `json:"children"`
}

// ChildStatus is one running child.
type ChildStatus struct {
	PID     int       `json:"pid"`
	Remote  string    `json:"remote,omitempty"`
	Started time.Time `json:"started"`
}

// Status takes a snapshot of every service through the loop, so it never
// reads state the loop is changing.
func (s *Server) Status(timeout time.Duration) ([]ServiceStatus, error) {
	var out []ServiceStatus
	err := s.call(func() {
		idx := make(map[*service]int, len(s.services))
		for _, svc := range s.services {
			idx[svc] = len(out)
			out = append(out, ServiceStatus{
				Name:        svc.cfg.Name,
				Mode:        svc.cfg.Mode.String(),
				Sockets:     svc.listenStrings(),
				State:       svc.state.String(),
				Instances:   int(svc.active),
				Activations: svc.activations,
				Children:    []ChildStatus{},
			})
		}
		configured := len(out)
		// A service a reload removed, whose children or in-process
		// sessions finish: listed after the configured ones, as
		// "removed" (beside a service of the same name configured
		// again, if any).
		row := func(svc *service) int {
			i, ok := idx[svc]
			if !ok {
				i = len(out)
				idx[svc] = i
				out = append(out, ServiceStatus{
					Name:        svc.cfg.Name,
					Mode:        svc.cfg.Mode.String(),
					Sockets:     []string{},
					State:       "removed",
					Instances:   int(svc.active),
					Activations: svc.activations,
					Children:    []ChildStatus{},
				})
			}
			return i
		}
		for _, c := range s.children {
			i := row(c.svc)
			out[i].Children = append(out[i].Children, ChildStatus{PID: c.pid, Remote: c.remote, Started: c.started})
		}
		for ss := range s.sessions {
			row(ss.svc)
		}
		removed := out[configured:]
		slices.SortFunc(removed, func(a, b ServiceStatus) int { return strings.Compare(a.Name, b.Name) })
		for i := range out {
			slices.SortFunc(out[i].Children, func(a, b ChildStatus) int { return a.PID - b.PID })
		}
	}, timeout)
	return out, err
}

// StatusJSON is Status for the admin handler.
func (s *Server) StatusJSON(timeout time.Duration) (any, error) {
	return s.Status(timeout)
}
