package main

import (
	"math"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// Going idle turns the collector off under a finite memory limit; busy
// again restores both as they were.
func TestIdleMemoryTurnsTheCollectorOffAndBack(t *testing.T) {
	old := debug.SetGCPercent(150)
	oldLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(old)
		debug.SetMemoryLimit(oldLimit)
	})
	g := newIdleMemory(cgroupMemory{})
	for i := 0; i < 64; i++ {
		idleSink = append(idleSink, make([]byte, 64<<10)) // enough to be worth a GC
	}
	idleSink = nil
	g.set(true)
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Errorf("idle: GC percent %d, want -1 (off)", p)
	}
	if l := debug.SetMemoryLimit(-1); l == math.MaxInt64 || l <= idleHeadroom {
		t.Errorf("idle: memory limit %d, want what superd holds + %d", l, idleHeadroom)
	}
	g.set(false)
	if p := debug.SetGCPercent(150); p != 150 {
		t.Errorf("busy: GC percent %d, want 150 as before", p)
	}
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		t.Errorf("busy: memory limit %d, want the one before", l)
	}
}

// idleSink holds allocations the compiler must not optimise away.
var idleSink [][]byte

func TestSpawnerCountFromTheEnvironment(t *testing.T) {
	t.Setenv("SUPERD_SPAWNERS", "")
	if n, err := spawnerCount(); err != nil || n != runtime.GOMAXPROCS(0) {
		t.Errorf("unset: %d, %v; want %d (one per usable CPU)", n, err, runtime.GOMAXPROCS(0))
	}
	t.Setenv("SUPERD_SPAWNERS", "3")
	if n, err := spawnerCount(); err != nil || n != 3 {
		t.Errorf("SUPERD_SPAWNERS=3: %d, %v", n, err)
	}
	for _, bad := range []string{"0", "-1", "many", "1025"} {
		t.Setenv("SUPERD_SPAWNERS", bad)
		if _, err := spawnerCount(); err == nil || !strings.Contains(err.Error(), "SUPERD_SPAWNERS") {
			t.Errorf("SUPERD_SPAWNERS=%s: error %v, want one naming the variable", bad, err)
		}
	}
}

// In a memory cgroup, start-up takes at most half the room left, never
// less than minStartup; idle headroom at most a quarter of the limit.
func TestMemoryBoundsFollowTheCgroup(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		cg                cgroupMemory
		startup, headroom int64
	}{
		{cgroupMemory{}, math.MaxInt64, idleHeadroom},
		{cgroupMemory{limit: 64 * mib, room: 60 * mib}, 30 * mib, 16 * mib},
		{cgroupMemory{limit: 64 * mib, room: 10 * mib}, minStartup, 16 * mib}, // a superd handing over holds the rest
		{cgroupMemory{limit: 1024 * mib, room: 1000 * mib}, 500 * mib, idleHeadroom},
	} {
		if got := startupCap(tc.cg); got != tc.startup {
			t.Errorf("%+v: start-up cap %d, want %d", tc.cg, got, tc.startup)
		}
		if got := newIdleMemory(tc.cg).headroom; got != tc.headroom {
			t.Errorf("%+v: idle headroom %d, want %d", tc.cg, got, tc.headroom)
		}
	}
}

// A live upgrade needs room for a second superd: twice what this one
// holds; without a memory limit nothing is refused.
func TestRoomForUpgrade(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		cg   cgroupMemory
		held int64
		ok   bool
	}{
		{cgroupMemory{}, 1 << 40, true},
		{cgroupMemory{limit: 96 * mib, room: 51 * mib}, 22 * mib, true},
		{cgroupMemory{limit: 80 * mib, room: 35 * mib}, 22 * mib, false},
		{cgroupMemory{limit: 64 * mib, room: 0}, 22 * mib, false},
	} {
		err := roomForUpgrade(tc.cg, tc.held)
		if (err == nil) != tc.ok || err != nil && !strings.Contains(err.Error(), "MemoryMax=") {
			t.Errorf("%+v, held %d: %v", tc.cg, tc.held, err)
		}
	}
}

// Once the sockets are known, the start-up bound leaves room for what the
// kernel will charge the cgroup for them.
func TestStartupBoundLeavesRoomForSockets(t *testing.T) {
	const mib = 1 << 20
	old := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	startupSockets(cgroupMemory{}, 10000)
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		t.Errorf("no cgroup limit: memory limit %d, want it unchanged", l)
	}
	for _, tc := range []struct {
		room    int64
		sockets int
		want    int64
	}{
		{200 * mib, 10000, (200*mib - 10000*socketKernelMemory) / 2},
		{60 * mib, 10000, minStartup}, // 40 MiB of sockets: the floor
		{60 * mib, 0, 30 * mib},
	} {
		debug.SetMemoryLimit(math.MaxInt64)
		startupSockets(cgroupMemory{limit: 256 * mib, room: tc.room}, tc.sockets)
		if l := debug.SetMemoryLimit(-1); l != tc.want {
			t.Errorf("room %d MiB, %d sockets: memory limit %d, want %d", tc.room/mib, tc.sockets, l, tc.want)
		}
	}
}
