package access

import (
	"time"

	"github.com/superd/superd/pkg/config"
)

const minutesPerDay = 24 * 60

// Times is a service's access_times: the minutes of the day, in local wall
// clock, during which it accepts. The zero Times is always open. A Times is
// immutable once built and safe for concurrent use.
type Times struct {
	// open has bit m set when minute m of the day is inside a window;
	// nil when there are no windows.
	open *[(minutesPerDay + 63) / 64]uint64
}

// NewTimes builds the Times of windows. A minute t is inside a window when
// Start <= t < End, or, for a window that wraps past midnight (End < Start),
// when t >= Start or t < End. A window with Start == End holds no minute;
// values are clamped to 0..1440. No windows means always open.
func NewTimes(windows []config.TimeWindow) Times {
	if len(windows) == 0 {
		return Times{}
	}
	t := Times{open: new([(minutesPerDay + 63) / 64]uint64)}
	for _, w := range windows {
		start := min(max(w.Start, 0), minutesPerDay)
		end := min(max(w.End, 0), minutesPerDay)
		if end < start {
			t.set(start, minutesPerDay)
			start = 0
		}
		t.set(start, end)
	}
	return t
}

// set marks the minutes from start up to, not including, end.
func (t Times) set(start, end int) {
	for m := start; m < end; m++ {
		t.open[m/64] |= 1 << (m % 64)
	}
}

// Open reports whether now falls inside a window, reading now's wall clock
// in now's own Location (time.Now is in time.Local); seconds are ignored.
func (t Times) Open(now time.Time) bool {
	if t.open == nil {
		return true
	}
	h, m, _ := now.Clock()
	minute := h*60 + m
	return t.open[minute/64]&(1<<(minute%64)) != 0
}
