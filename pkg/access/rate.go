package access

import "time"

// ExactRateMax is the largest max a RateLimiter keeps exact: it remembers
// the times of the last max activations (8 bytes each, at most 512 KiB).
// Above it, a RateLimiter counts activations in 4096 buckets of per/4096
// each instead (32 KiB), an approximation the RateLimiter doc describes.
const ExactRateMax = 1 << 16

// rateBuckets is the number of buckets of an approximate RateLimiter.
const rateBuckets = 4096

// RateLimiter enforces a service's rate_limit {max, per, pause}: once an
// activation would be the (max+1)-th within a sliding window of per, it is
// refused and so is every activation until pause has passed; then the
// window starts again, empty. Refused activations are not counted. The
// window at now holds the activations at times t with now-per < t <= now.
//
// For max up to ExactRateMax the window is exact. Above it, activations are
// counted per bucket of per/4096 and the window is the last 4096 buckets,
// the current one included, which can be up to one bucket (plus a few µs of
// rounding) shorter than per: it never refuses an activation the exact
// window would allow, and may allow the activations of one bucket more.
//
// A RateLimiter is not safe for concurrent use: the event loop owns it. It
// allocates only in NewRateLimiter. now should never go backwards (the
// monotonic reading of time.Now makes sure of it); an earlier time is taken
// as inside the window. The nil *RateLimiter allows everything.
type RateLimiter struct {
	max   int
	per   time.Duration
	pause time.Duration

	// Times are kept as nanoseconds since base, the first time seen.
	base    time.Time
	started bool

	// Exact: the last n allowed activations, oldest at ring[head].
	ring    []int64
	head, n int

	// Approximate: count[i % len(count)] allowed activations in bucket i
	// (time since base / width), for buckets cur-len(count) < i <= cur.
	count []int
	width int64
	cur   int64
	total int

	// paused is set from a refusal until the first Allow at or after
	// pausedUntil, which starts a new window.
	paused      bool
	pausedUntil time.Time
}

// NewRateLimiter returns a limiter that allows max activations in any window
// of per and pauses for pause after refusing one. Out-of-range values
// (config never gives them) are raised to the least meaningful one: max to
// 1, per to 1ns, pause to 0.
func NewRateLimiter(max int, per, pause time.Duration) *RateLimiter {
	return newRateLimiter(max, per, pause, ExactRateMax)
}

// newRateLimiter is NewRateLimiter with the exact limit as a parameter, so
// that tests can exercise the approximate window with a small max.
func newRateLimiter(limit int, per, pause time.Duration, exactMax int) *RateLimiter {
	r := &RateLimiter{max: max(limit, 1), per: max(per, 1), pause: max(pause, 0)}
	if r.max <= exactMax {
		r.ring = make([]int64, r.max)
		return r
	}
	b := int64(rateBuckets)
	if int64(r.per) < b {
		b = int64(r.per)
	}
	r.count = make([]int, b)
	r.width = int64(r.per) / b
	return r
}

// Allow reports whether an activation at now may go ahead, and counts it if
// so. When it may not, pausedUntil is when the pause ends; the caller stops
// accepting until then. It is O(1) (amortized O(1) per bucket of elapsed
// time above ExactRateMax) and does not allocate.
func (r *RateLimiter) Allow(now time.Time) (ok bool, pausedUntil time.Time) {
	if r == nil {
		return true, time.Time{}
	}
	if r.paused {
		if now.Before(r.pausedUntil) {
			return false, r.pausedUntil
		}
		r.restart()
	}
	if !r.started {
		r.base, r.started = now, true
	}
	t := int64(now.Sub(r.base))
	if r.ring != nil {
		ok = r.allowExact(t)
	} else {
		ok = r.allowBuckets(t)
	}
	if !ok {
		r.paused, r.pausedUntil = true, now.Add(r.pause)
		return false, r.pausedUntil
	}
	return true, time.Time{}
}

// PausedUntil returns when the current pause ends, or the zero Time if the
// limiter has refused nothing since its window last started. A time not
// after now means the pause is over; the next Allow starts a new window.
func (r *RateLimiter) PausedUntil() time.Time {
	if r == nil || !r.paused {
		return time.Time{}
	}
	return r.pausedUntil
}

func (r *RateLimiter) allowExact(t int64) bool {
	if r.n < len(r.ring) {
		i := r.head + r.n
		if i >= len(r.ring) {
			i -= len(r.ring)
		}
		r.ring[i] = t
		r.n++
		return true
	}
	// The window holds the last max activations and would hold this one
	// too while the oldest of them is inside it.
	if inWindow(t, r.ring[r.head], r.per) {
		return false
	}
	r.ring[r.head] = t
	r.head++
	if r.head == len(r.ring) {
		r.head = 0
	}
	return true
}

// inWindow reports whether an activation at then is inside the window of
// length per ending at now: now-per < then, without overflow.
func inWindow(now, then int64, per time.Duration) bool {
	if now < then {
		return true
	}
	return uint64(now)-uint64(then) < uint64(per)
}

func (r *RateLimiter) allowBuckets(t int64) bool {
	// A time before base truncates to bucket 0 or below and, like any
	// time before the current bucket, counts in the current bucket.
	if i := t / r.width; i > r.cur {
		if i-r.cur >= int64(len(r.count)) {
			clear(r.count)
			r.total = 0
		} else {
			for k := r.cur + 1; k <= i; k++ {
				j := k % int64(len(r.count))
				r.total -= r.count[j]
				r.count[j] = 0
			}
		}
		r.cur = i
	}
	if r.total >= r.max {
		return false
	}
	r.count[r.cur%int64(len(r.count))]++
	r.total++
	return true
}

// restart empties the window after a pause.
func (r *RateLimiter) restart() {
	r.paused, r.pausedUntil = false, time.Time{}
	r.head, r.n = 0, 0
	clear(r.count)
	r.total = 0
}
