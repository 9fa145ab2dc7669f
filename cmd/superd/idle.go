package main

import (
	"math"
	"net/http"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/superd/superd/pkg/server"
)

// idleAfter is how long the loop waits without an event before it calls
// superd idle.
const idleAfter = time.Second

// idleMemory is superd's memory policy between bursts of work
// (server.Options.Idle). While busy, the garbage collector runs as
// configured. Going idle, superd collects once if it allocated since the
// last collection, hands the freed memory back to the kernel, drops its
// mappings of its executable (codePages), and turns the collector
// off: the runtime otherwise forces a collection every two minutes, which
// wakes several threads of a superd that has nothing to do (measured:
// 20-27 context switches per idle 120 s, 4 without). A memory
// limit above what superd then holds stays as a safety net for whatever
// allocates without waking the loop.
type idleMemory struct {
	percent int   // GC percent while busy (GOGC)
	limit   int64 // memory limit while busy (GOMEMLIMIT)
	// headroom is how far the heap may grow while idle: idleHeadroom, or
	// a quarter of the memory cgroup's limit if that is less.
	headroom int64
	sample   []metrics.Sample
	// unmap says whether going idle drops the executable's mappings
	// (idleUnmap); code does it.
	unmap bool
	code  codePages
	// allocated is the cumulative heap allocation at the last collection
	// idleMemory made or skipped.
	allocated uint64
}

// idleHeadroom is how far an idle superd's heap may grow, with the
// collector off, before the memory limit makes it collect anyway.
const idleHeadroom = 64 << 20

// idleGCThreshold is how much a busy period must have allocated for going
// idle to be worth a collection.
const idleGCThreshold = 1 << 20

// newIdleMemory reads the memory policy superd starts with; cg is its
// memory cgroup's (readCgroupMemory).
func newIdleMemory(cg cgroupMemory) *idleMemory {
	// GOGC's and GOMEMLIMIT's effect, read without changing them.
	now := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(now)
	return &idleMemory{
		percent:  int(now[0].Value.Uint64()),
		limit:    int64(now[1].Value.Uint64()),
		headroom: min(idleHeadroom, quarterOf(cg.limit)),
		sample:   append([]metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}, heldSamples()...),
		unmap:    true,
	}
}

// heldSamples are the runtime metrics held reads.
func heldSamples() []metrics.Sample {
	return []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
}

// held is what the Go runtime holds from the kernel, from heldSamples
// read: everything it mapped less what it has handed back.
func held(s []metrics.Sample) int64 {
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64())
}

// heldMemory is held now.
func heldMemory() int64 {
	s := heldSamples()
	metrics.Read(s)
	return held(s)
}

// set is Options.Idle. Going idle costs the loop one full collection (a
// few milliseconds with a small heap) when the busy period allocated at
// least idleGCThreshold, and code.drop (~0.5 ms) every time unless
// SUPERD_IDLE_UNMAP=0.
func (g *idleMemory) set(idle bool) {
	if !idle {
		debug.SetGCPercent(g.percent)
		debug.SetMemoryLimit(g.limit)
		return
	}
	metrics.Read(g.sample)
	if a := g.sample[0].Value.Uint64(); a-g.allocated >= idleGCThreshold {
		debug.FreeOSMemory()
		metrics.Read(g.sample)
	}
	// Every time, not only after a collection: a connection or a scrape
	// maps megabytes of code back while allocating far less.
	if g.unmap {
		g.code.drop()
	}
	g.allocated = g.sample[0].Value.Uint64()
	// The memory limit counts what superd holds, not what it has handed
	// back to the kernel.
	debug.SetMemoryLimit(min(held(g.sample[1:])+g.headroom, g.limit))
	debug.SetGCPercent(-1)
}

// startupLimit caps superd's memory while it starts with the collector off.
const startupLimit = 512 << 20

// quarterOf is a quarter of a cgroup's memory limit, or no bound where
// there is none (0).
func quarterOf(limit int64) int64 {
	if limit <= 0 {
		return math.MaxInt64
	}
	return limit / 4
}

// minStartup is the least memory limit superd starts under: below it the
// runtime would collect without end (it takes a few MB before parsing).
const minStartup = 16 << 20

// startupCap is the most memory superd lets the runtime take while it
// starts with the collector off, in a memory cgroup: half the room the
// cgroup has left, the rest for what the runtime does not count (the
// executable's pages, the kernel's memory for each socket — ~4 KiB a TCP
// listener —, a superd handing over in a live upgrade), and at least
// minStartup. Without a limit it bounds nothing. Measured: 10,000 services
// start with a peak of ~100 MB with the collector off; in a 64 MiB cgroup,
// superd was killed by the OOM killer while starting, though once started
// its RSS is under 20 MB.
func startupCap(cg cgroupMemory) int64 {
	if cg.limit <= 0 {
		return math.MaxInt64
	}
	return max(cg.room/2, minStartup)
}

// socketKernelMemory is what the kernel charges a memory cgroup for one
// listening socket, at most: ~4 KiB for a TCP listener (10,000 took 40
// MiB), less for UNIX and UDP sockets.
const socketKernelMemory = 4 << 10

// startupSockets lowers the start-up bound, once the configuration is
// parsed, by the kernel memory the cgroup is about to be charged for its n
// sockets: it counts against the same limit, unseen by the runtime.
func startupSockets(cg cgroupMemory, n int) {
	if cg.limit <= 0 {
		return
	}
	room := cgroupMemory{limit: cg.limit, room: max(cg.room-int64(n)*socketKernelMemory, 0)}
	debug.SetMemoryLimit(min(debug.SetMemoryLimit(-1), startupCap(room)))
}

// startupMemory turns the collector off while superd parses its
// configuration and binds its sockets — under a memory limit of
// startupLimit, or startupCap(cg) if lower — and returns the
// function that turns it back on, collects and returns the garbage to
// the kernel. Collections during start-up would free the parser's garbage
// piecemeal and let what superd keeps fill the holes, scattered over many
// half-empty pages; with one collection at the end, what it keeps is
// packed into fewer pages. Measured with 10,000 services: 58 MB RSS after
// start-up with the collector on, 42 MB this way (peak 126 MB instead of
// 90 MB while starting; since then 17 MiB, peak 91 MiB). Where the limit
// is reached the runtime collects as it must, and superd starts anyway.
func startupMemory(cg cgroupMemory) (done func()) {
	percent := debug.SetGCPercent(-1)
	limit := debug.SetMemoryLimit(-1)
	debug.SetMemoryLimit(min(limit, startupLimit, startupCap(cg)))
	return func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
		debug.FreeOSMemory()
	}
}

// touching counts each admin request as work for the loop, so that what a
// scrape allocates is collected as usual and not left to the idle limit.
func touching(srv *server.Server, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.Touch()
		h.ServeHTTP(w, r)
	})
}
