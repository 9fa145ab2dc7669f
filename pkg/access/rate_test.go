package access

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when told to.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) advance(d time.Duration) { c.now = c.now.Add(d) }

var _ Clock = (*fakeClock)(nil)
var _ Clock = SystemClock{}

func TestRateLimiterAllow(t *testing.T) {
	t.Parallel()
	type step struct {
		after  time.Duration // since the previous step
		ok     bool
		paused time.Duration // for a refusal: pausedUntil, since the start
	}
	type row struct {
		name  string
		max   int
		per   time.Duration
		pause time.Duration
		steps []step
	}
	ok := func(after time.Duration) step { return step{after: after, ok: true} }
	no := func(after, until time.Duration) step { return step{after: after, paused: until} }
	tests := []row{
		{"exactly max activations at once are allowed", 3, time.Second, 10 * time.Second,
			[]step{ok(0), ok(0), ok(0)}},
		{"the max+1-th activation at once is refused and the pause reported", 3, time.Second, 10 * time.Second,
			[]step{ok(0), ok(0), ok(0), no(0, 10*time.Second)}},
		{"the max+1-th activation just inside the window is refused", 3, time.Second, 10 * time.Second,
			[]step{ok(0), ok(300 * time.Millisecond), ok(300 * time.Millisecond), no(399*time.Millisecond, 10*time.Second+999*time.Millisecond)}},
		{"an activation exactly per after the oldest is allowed", 3, time.Second, 10 * time.Second,
			[]step{ok(0), ok(300 * time.Millisecond), ok(300 * time.Millisecond), ok(400 * time.Millisecond)}},
		{"activations are still refused during the pause", 2, time.Second, 5 * time.Second,
			[]step{ok(0), ok(0), no(0, 5*time.Second), no(time.Second, 5*time.Second), no(3999*time.Millisecond, 5*time.Second)}},
		{"an activation when the pause ends is allowed", 2, time.Second, 5 * time.Second,
			[]step{ok(0), ok(0), no(0, 5*time.Second), ok(5 * time.Second)}},
		{"after the pause the window starts fresh", 2, time.Second, 5 * time.Second,
			[]step{ok(0), ok(0), no(0, 5*time.Second), ok(5 * time.Second), ok(0), no(0, 10*time.Second)}},
		{"activations spread so that no window holds more than max are all allowed", 2, time.Second, time.Hour,
			[]step{ok(0), ok(500 * time.Millisecond), ok(500 * time.Millisecond), ok(500 * time.Millisecond), ok(500 * time.Millisecond), ok(500 * time.Millisecond)}},
		{"the window slides: a burst after a gap of per is allowed", 3, time.Second, time.Hour,
			[]step{ok(0), ok(0), ok(0), ok(time.Second), ok(0), ok(0), no(0, time.Second+time.Hour)}},
		{"the window slides: the oldest leaving lets exactly one more in", 3, time.Second, time.Minute,
			[]step{ok(0), ok(400 * time.Millisecond), ok(400 * time.Millisecond), ok(200 * time.Millisecond), no(0, time.Second+time.Minute)}},
		{"with max 1 a second activation within per is refused", 1, time.Minute, time.Minute,
			[]step{ok(0), ok(time.Minute), no(59*time.Second, 2*time.Minute+59*time.Second)}},
		{"a refused activation is not counted", 2, time.Second, 0,
			[]step{ok(0), ok(0), no(0, 0), ok(0), ok(0), no(0, 0)}},
		{"a time before the last one counts as inside the window", 2, time.Second, time.Second,
			[]step{ok(time.Hour), ok(0), no(-time.Hour, time.Second)}},
	}
	for _, tt := range tests {
		for _, exactMax := range []int{ExactRateMax, 0} {
			name := tt.name
			if exactMax == 0 {
				name += " (approximate)"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
				clock := &fakeClock{now: start}
				r := newRateLimiter(tt.max, tt.per, tt.pause, exactMax)
				for i, s := range tt.steps {
					clock.advance(s.after)
					gotOK, until := r.Allow(clock.Now())
					var want time.Time
					if !s.ok {
						want = start.Add(s.paused)
					}
					if gotOK != s.ok || !until.Equal(want) {
						t.Fatalf("step %d at +%v: Allow = %v, %v; want %v, %v", i, clock.Now().Sub(start), gotOK, until, s.ok, want)
					}
					if got := r.PausedUntil(); !got.Equal(want) {
						t.Fatalf("step %d: PausedUntil = %v, want %v", i, got, want)
					}
				}
			})
		}
	}
}

func TestRateLimiterNilAndOutOfRange(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		r     *RateLimiter
		allow int // activations at once before the first refusal; -1: never refused
	}{
		{"a nil limiter allows everything", nil, -1},
		{"max 0 is taken as 1", NewRateLimiter(0, time.Second, time.Second), 1},
		{"a negative max is taken as 1", NewRateLimiter(-5, time.Second, time.Second), 1},
		{"per 0 is taken as 1ns, a window that holds one instant", NewRateLimiter(2, 0, time.Second), 2},
		{"a huge max uses the approximate window", NewRateLimiter(ExactRateMax+1, time.Second, time.Second), ExactRateMax + 1},
		{"a huge max with a tiny per still works", NewRateLimiter(ExactRateMax+1, 10, time.Second), ExactRateMax + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			limit := tt.allow
			if limit < 0 {
				limit = 1000
			}
			for i := range limit {
				if ok, _ := tt.r.Allow(now); !ok {
					t.Fatalf("activation %d refused, want allowed", i+1)
				}
			}
			ok, _ := tt.r.Allow(now)
			if ok != (tt.allow < 0) {
				t.Fatalf("activation %d: Allow = %v, want %v", limit+1, ok, tt.allow < 0)
			}
			if tt.allow < 0 && !tt.r.PausedUntil().IsZero() {
				t.Fatalf("a nil limiter reports a pause")
			}
		})
	}
}

// naiveRate is the reference RateLimiter: it keeps every allowed time.
type naiveRate struct {
	max         int
	per, pause  time.Duration
	allowed     []time.Time
	paused      bool
	pausedUntil time.Time
}

func (n *naiveRate) allow(now time.Time) (bool, time.Time) {
	if n.paused {
		if now.Before(n.pausedUntil) {
			return false, n.pausedUntil
		}
		n.paused, n.allowed = false, nil
	}
	in := 0
	for _, t := range n.allowed {
		if now.Sub(t) < n.per {
			in++
		}
	}
	if in+1 > n.max {
		n.paused, n.pausedUntil = true, now.Add(n.pause)
		return false, n.pausedUntil
	}
	n.allowed = append(n.allowed, now)
	return true, time.Time{}
}

// countIn returns how many of times lie in the window of length per ending
// at now.
func countIn(times []time.Time, now time.Time, per time.Duration) int {
	in := 0
	for _, t := range times {
		if d := now.Sub(t); d >= 0 && d < per {
			in++
		}
	}
	return in
}

// rateSteps turns fuzz bytes into non-decreasing gaps between activations:
// many at once, some a fraction of per apart, some longer.
func rateSteps(data []byte, per time.Duration) []time.Duration {
	var gaps []time.Duration
	for len(data) >= 2 && len(gaps) < 300 {
		v := binary.LittleEndian.Uint16(data)
		data = data[2:]
		var gap time.Duration
		switch v % 4 {
		case 0:
			gap = 0
		case 1, 2:
			gap = per * time.Duration(v>>2) / 2048
		default:
			gap = per * time.Duration(v>>2) / 256
		}
		gaps = append(gaps, gap)
	}
	return gaps
}

func FuzzRateLimiter(f *testing.F) {
	f.Add(uint8(3), uint16(1000), uint16(5000), []byte{0, 0, 0, 0, 0, 0, 0, 0, 1, 8, 3, 0, 5, 2})
	f.Add(uint8(1), uint16(1), uint16(0), []byte{1, 1, 1, 1, 2, 2, 3, 3})
	f.Add(uint8(10), uint16(60000), uint16(1), []byte("the quick brown fox jumps over the lazy dog"))
	f.Fuzz(func(t *testing.T, maxN uint8, perMS, pauseMS uint16, data []byte) {
		limit := int(maxN)%64 + 1
		per := time.Duration(perMS)*time.Millisecond + 1
		pause := time.Duration(pauseMS) * time.Millisecond
		start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		gaps := rateSteps(data, per)

		// The exact limiter agrees with the reference on every activation.
		exact := NewRateLimiter(limit, per, pause)
		ref := &naiveRate{max: limit, per: per, pause: pause}
		now := start
		for i, gap := range gaps {
			now = now.Add(gap)
			gotOK, gotUntil := exact.Allow(now)
			wantOK, wantUntil := ref.allow(now)
			if gotOK != wantOK || !gotUntil.Equal(wantUntil) {
				t.Fatalf("max %d per %v pause %v, activation %d at +%v: Allow = %v, %v; the reference says %v, %v",
					limit, per, pause, i, now.Sub(start), gotOK, gotUntil, wantOK, wantUntil)
			}
		}

		// The approximate limiter refuses only what the exact window would
		// refuse, and allows only when the window one bucket shorter than per
		// holds fewer than max.
		approx := newRateLimiter(limit, per, pause, 0)
		slack := time.Duration((int64(len(approx.count)) - 1) * approx.width)
		var allowed []time.Time
		var pausedUntil time.Time
		now = start
		for i, gap := range gaps {
			now = now.Add(gap)
			ok, until := approx.Allow(now)
			switch {
			case now.Before(pausedUntil):
				if ok || !until.Equal(pausedUntil) {
					t.Fatalf("activation %d at +%v during the pause: Allow = %v, %v", i, now.Sub(start), ok, until)
				}
				continue
			case !pausedUntil.IsZero():
				allowed, pausedUntil = nil, time.Time{}
			}
			if ok {
				if n := countIn(allowed, now, slack); n >= limit {
					t.Fatalf("activation %d at +%v allowed with %d in the last %v, max %d", i, now.Sub(start), n, slack, limit)
				}
				allowed = append(allowed, now)
				continue
			}
			if n := countIn(allowed, now, per); n < limit {
				t.Fatalf("activation %d at +%v refused with %d in the last %v, max %d", i, now.Sub(start), n, per, limit)
			}
			if !until.Equal(now.Add(pause)) {
				t.Fatalf("activation %d: paused until %v, want %v", i, until, now.Add(pause))
			}
			pausedUntil = until
		}
	})
}

func BenchmarkRateLimiterAllow(b *testing.B) {
	for _, tc := range []struct {
		name string
		max  int
	}{{"max=10", 10}, {"max=1000", 1000}, {"approximate", ExactRateMax + 1}} {
		b.Run(tc.name, func(b *testing.B) {
			// Twice the rate allowed: runs of max allowed activations,
			// each ended by a refusal and a pause of 12 refused ones.
			r := NewRateLimiter(tc.max, time.Duration(tc.max)*time.Millisecond/2, 3*time.Millisecond)
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Millisecond / 4)
				r.Allow(now)
			}
		})
	}
}

func TestRateLimiterAllowDoesNotAllocate(t *testing.T) {
	for _, exactMax := range []int{ExactRateMax, 0} {
		t.Run(fmt.Sprint("exactMax=", exactMax), func(t *testing.T) {
			r := newRateLimiter(5, time.Second, time.Second, exactMax)
			now := time.Now()
			if n := testing.AllocsPerRun(1000, func() {
				now = now.Add(100 * time.Millisecond)
				r.Allow(now)
				r.PausedUntil()
			}); n != 0 {
				t.Errorf("Allow allocates %v times per run, want 0", n)
			}
		})
	}
}
