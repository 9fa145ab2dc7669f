package access

import "time"

// Clock tells the time. The event loop reads it once per event and passes
// the reading to the checks of this package, which never read a clock
// themselves; tests substitute a fake.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
}

// SystemClock is the Clock of the running system: time.Now, whose monotonic
// reading keeps rate windows correct across wall-clock steps.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }
