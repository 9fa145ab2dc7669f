package access

import (
	"testing"
	"time"

	"github.com/superd/superd/pkg/config"
)

func TestTimesOpen(t *testing.T) {
	t.Parallel()
	// UTC+5:30 with no DST, so that a wrong zone shows as a wrong answer.
	kolkata := time.FixedZone("IST", 5*3600+30*60)
	at := func(h, m int) time.Time { return time.Date(2025, 3, 14, h, m, 0, 0, time.UTC) }
	office := []config.TimeWindow{{Start: 8 * 60, End: 18*60 + 30}}
	night := []config.TimeWindow{{Start: 22 * 60, End: 6 * 60}}
	split := []config.TimeWindow{{Start: 6 * 60, End: 9 * 60}, {Start: 17 * 60, End: 20 * 60}}
	tests := []struct {
		name    string
		windows []config.TimeWindow
		now     time.Time
		want    bool
	}{
		{"no windows is always open at midnight", nil, at(0, 0), true},
		{"no windows is always open at 23:59", nil, at(23, 59), true},
		{"inside a window is open", office, at(12, 0), true},
		{"before a window is closed", office, at(7, 0), false},
		{"after a window is closed", office, at(19, 0), false},
		{"the first minute of a window is open", office, at(8, 0), true},
		{"the minute before a window is closed", office, at(7, 59), false},
		{"the last second of a window's last minute is open", office, time.Date(2025, 3, 14, 18, 29, 59, 999999999, time.UTC), true},
		{"the end minute of a window is closed", office, at(18, 30), false},
		{"a wrapping window is open late in the evening", night, at(23, 0), true},
		{"a wrapping window is open at midnight", night, at(0, 0), true},
		{"a wrapping window is open early in the morning", night, at(5, 59), true},
		{"a wrapping window is open at its start", night, at(22, 0), true},
		{"a wrapping window is closed at its end", night, at(6, 0), false},
		{"a wrapping window is closed at noon", night, at(12, 0), false},
		{"a wrapping window is closed the minute before its start", night, at(21, 59), false},
		{"two windows: inside the first is open", split, at(7, 0), true},
		{"two windows: inside the second is open", split, at(19, 59), true},
		{"two windows: between them is closed", split, at(12, 0), false},
		{"two windows: after both is closed", split, at(20, 0), false},
		{"a window to the last minute includes 23:59", []config.TimeWindow{{Start: 23 * 60, End: 0}}, at(23, 59), true},
		{"a window to the last minute excludes 00:00", []config.TimeWindow{{Start: 23 * 60, End: 0}}, at(0, 0), false},
		{"a window from 00:00 includes midnight", []config.TimeWindow{{Start: 0, End: 60}}, at(0, 0), true},
		{"a window with equal ends holds nothing", []config.TimeWindow{{Start: 60, End: 60}}, at(1, 0), false},
		{"in another zone the local wall clock counts: 12:00 UTC is 17:30 IST", office, at(12, 0).In(kolkata), true},
		{"in another zone the local wall clock counts: 13:00 UTC is 18:30 IST", office, at(13, 0).In(kolkata), false},
		{"in another zone the local wall clock counts: 02:29 UTC is 07:59 IST", office, at(2, 29).In(kolkata), false},
		{"in another zone a wrapping window: 18:30 UTC is 00:00 IST", night, at(18, 30).In(kolkata), true},
		{"in another zone a wrapping window: 00:30 UTC is 06:00 IST", night, at(0, 30).In(kolkata), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := NewTimes(tt.windows).Open(tt.now); got != tt.want {
				t.Errorf("windows %v: Open(%v) = %v, want %v", tt.windows, tt.now, got, tt.want)
			}
		})
	}
}

func TestTimesMatchesTheWindowRule(t *testing.T) {
	t.Parallel()
	windows := [][]config.TimeWindow{
		{{Start: 0, End: 1439}},
		{{Start: 1439, End: 0}},
		{{Start: 1, End: 0}},
		{{Start: 63, End: 65}, {Start: 127, End: 129}},
		{{Start: 1000, End: 10}, {Start: 5, End: 1001}},
	}
	for _, ws := range windows {
		times := NewTimes(ws)
		for m := range minutesPerDay {
			want := false
			for _, w := range ws {
				if w.Start <= w.End && w.Start <= m && m < w.End || w.End < w.Start && (m >= w.Start || m < w.End) {
					want = true
				}
			}
			now := time.Date(2025, 1, 1, m/60, m%60, 30, 0, time.UTC)
			if got := times.Open(now); got != want {
				t.Fatalf("windows %v: Open(%02d:%02d) = %v, want %v", ws, m/60, m%60, got, want)
			}
		}
	}
}

func TestTimesOpenDoesNotAllocate(t *testing.T) {
	times := NewTimes([]config.TimeWindow{{Start: 22 * 60, End: 6 * 60}})
	now := time.Date(2025, 1, 1, 23, 0, 0, 0, time.Local)
	if n := testing.AllocsPerRun(100, func() { times.Open(now) }); n != 0 {
		t.Errorf("Open allocates %v times per run, want 0", n)
	}
}
