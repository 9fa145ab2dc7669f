package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestParseMapsLine(t *testing.T) {
	const exe = "/usr/sbin/superd"
	for _, c := range []struct {
		line       string
		start, end uintptr
		ok         bool
	}{
		{"00400000-008e7000 r-xp 00000000 08:01 1234                               /usr/sbin/superd", 0x400000, 0x8e7000, true},
		{"008e7000-00e09000 r--p 004e7000 08:01 1234                               /usr/sbin/superd", 0x8e7000, 0xe09000, true},
		// Writable: the data segment, whose pages the program changed.
		{"00e09000-00e6e000 rw-p 00a09000 08:01 1234                               /usr/sbin/superd", 0, 0, false},
		// Shared, another file, anonymous, a path that only begins alike.
		{"00400000-00401000 r--s 00000000 08:01 1234 /usr/sbin/superd", 0, 0, false},
		{"7f00000000-7f00001000 r-xp 00000000 08:01 99 /usr/lib/libc.so.6", 0, 0, false},
		{"7f00000000-7f00001000 r--p 00000000 00:00 0 ", 0, 0, false},
		{"00400000-00401000 r-xp 00000000 08:01 1234 /usr/sbin/superd.old", 0, 0, false},
		// Malformed.
		{"00401000-00400000 r-xp 00000000 08:01 1234 /usr/sbin/superd", 0, 0, false},
		{"zz-00400000 r-xp 00000000 08:01 1234 /usr/sbin/superd", 0, 0, false},
		{"00400000-00401000 r-xp", 0, 0, false},
		{"00400000-00401000 r-xp    /usr/sbin/superd", 0, 0, false},
		{"00400000-00401000 rwxp 00000000 08:01 1234 /usr/sbin/superd", 0, 0, false},
		{"", 0, 0, false},
	} {
		m, ok := parseMapsLine(c.line, exe)
		if ok != c.ok || m.start != c.start || m.end != c.end {
			t.Errorf("%q: got %#x-%#x %v, want %#x-%#x %v", c.line, m.start, m.end, ok, c.start, c.end, c.ok)
		}
	}
	// An executable replaced since it started (a package upgrade), with a
	// space in its name: the kernel writes both as they are.
	deleted := "/opt/my tools/superd (deleted)"
	if m, ok := parseMapsLine("00400000-00500000 r-xp 00000000 08:01 7 "+deleted, deleted); !ok || m.end-m.start != 0x100000 {
		t.Errorf("deleted executable: %#x-%#x %v", m.start, m.end, ok)
	}
}

func FuzzParseMapsLine(f *testing.F) {
	f.Add("00400000-008e7000 r-xp 00000000 08:01 1234    /usr/sbin/superd", "/usr/sbin/superd")
	f.Add("00e09000-00e6e000 rw-p 00a09000 08:01 1234 /usr/sbin/superd", "/usr/sbin/superd")
	f.Add("7f0-7f1 r--p 0 0:0 0 /a b (deleted)", "/a b (deleted)")
	f.Fuzz(func(t *testing.T, line, exe string) {
		m, ok := parseMapsLine(line, exe)
		if !ok {
			return
		}
		if m.end <= m.start {
			t.Errorf("%q: empty or reversed range %#x-%#x", line, m.start, m.end)
		}
		if f := strings.SplitN(line, " ", 3); len(f) < 3 || len(f[1]) != 4 || f[1][1] == 'w' || f[1][3] != 'p' || !strings.HasSuffix(line, exe) {
			t.Errorf("%q: accepted as a read-only private mapping of %q", line, exe)
		}
	})
}

func TestPagemapEntriesSayWhichPagesAreTheFiles(t *testing.T) {
	for _, c := range []struct {
		name      string
		entry     uint64
		file, own bool
	}{
		{"not mapped (or a pagemap that says nothing)", 0, false, false},
		{"mapped from the file", pagemapPresent | pagemapFile | 0x1234, true, false},
		{"the process's own copy", pagemapPresent | 0x1234, false, true},
		{"swapped out", pagemapSwapped | 0x55, false, true},
		{"swapped out, marked as the file's", pagemapSwapped | pagemapFile, false, true},
	} {
		if filePage(c.entry) != c.file || ownCopy(c.entry) != c.own {
			t.Errorf("%s (%#x): filePage %v, ownCopy %v; want %v, %v", c.name, c.entry, filePage(c.entry), ownCopy(c.entry), c.file, c.own)
		}
	}
}

// openPagemap opens /proc/self/pagemap, or skips the test where it cannot
// be read (superd then unmaps nothing).
func openPagemap(t *testing.T) *os.File {
	t.Helper()
	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Skipf("no pagemap: %v", err)
	}
	t.Cleanup(func() { pm.Close() })
	return pm
}

// pagemapEntry reads the pagemap entry of the page at addr.
func pagemapEntry(t *testing.T, pm *os.File, addr uintptr) uint64 {
	t.Helper()
	var b [8]byte
	if _, err := pm.ReadAt(b[:], int64(addr/uintptr(os.Getpagesize()))*8); err != nil {
		t.Fatal(err)
	}
	return binary.NativeEndian.Uint64(b[:])
}

// mapFile maps a file of pages pages, page i holding byte i%256, private
// and read-only, as the executable's text is mapped.
func mapFile(t *testing.T, pages int) []byte {
	t.Helper()
	page := os.Getpagesize()
	content := make([]byte, pages*page)
	for i := range content {
		content[i] = byte(i / page)
	}
	path := filepath.Join(t.TempDir(), "text")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, len(content), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	return mem
}

// A private file mapping like the executable's, longer than one chunk of
// pagemap entries: every page that is the file's is unmapped and comes
// back with the file's content; a page the process wrote (as a debugger
// writes a breakpoint) keeps what was written, on both sides of a chunk's
// end.
func TestDropFilePagesKeepsThePagesTheProcessChanged(t *testing.T) {
	pm := openPagemap(t)
	page := os.Getpagesize()
	pages := pagemapChunk + 44
	mem := mapFile(t, pages)
	for i := 0; i < len(mem); i += page { // reading maps each page
		if mem[i] != byte(i/page) {
			t.Fatalf("page %d reads %d", i/page, mem[i])
		}
	}
	changed := map[int]bool{5: true, pagemapChunk - 1: true, pagemapChunk: true}
	for i := range changed {
		p := mem[i*page : (i+1)*page]
		if err := unix.Mprotect(p, unix.PROT_READ|unix.PROT_WRITE); err != nil {
			t.Fatal(err)
		}
		p[0] = 0xee
		if err := unix.Mprotect(p, unix.PROT_READ); err != nil {
			t.Fatal(err)
		}
	}
	start := uintptr(unsafe.Pointer(&mem[0]))
	for i := range pages {
		if e := pagemapEntry(t, pm, start+uintptr(i*page)); e&pagemapPresent == 0 {
			t.Fatalf("page %d not mapped after being read (entry %#x)", i, e)
		}
	}

	n, _, err := dropFilePages(pm, exeMapping{start, start + uintptr(len(mem))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (pages - len(changed)) * page; n != want {
		t.Errorf("dropped %d bytes, want %d (all pages but the changed ones)", n, want)
	}
	for i := range pages {
		e := pagemapEntry(t, pm, start+uintptr(i*page))
		if changed[i] {
			if !ownCopy(e) {
				t.Errorf("changed page %d: entry %#x, want the process's own copy still mapped", i, e)
			}
		} else if e&pagemapPresent != 0 {
			t.Errorf("page %d still mapped (entry %#x)", i, e)
		}
	}
	for i := 0; i < len(mem); i += page {
		want := byte(i / page)
		if changed[i/page] {
			want = 0xee
		}
		if mem[i] != want {
			t.Errorf("page %d reads %#x after being mapped again, want %#x", i/page, mem[i], want)
		}
	}
}

// Pages not mapped (entries of zeros) lie inside runs but never start one,
// also at the start of a chunk; a run cut by a chunk's end is unmapped.
// (Under 512 pages: a larger file may be mapped as one huge page here.)
func TestDropFilePagesRunsGoOverPagesNotMapped(t *testing.T) {
	pm := openPagemap(t)
	page := os.Getpagesize()
	const pages = 300
	mem := mapFile(t, pages)
	own := map[int]bool{8: true, 270: true}
	for i := range own {
		p := mem[i*page : (i+1)*page]
		if err := unix.Mprotect(p, unix.PROT_READ|unix.PROT_WRITE); err != nil {
			t.Fatal(err)
		}
		p[0] = 0xee
		if err := unix.Mprotect(p, unix.PROT_READ); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < len(mem); i += page { // reading maps each page
		if want := byte(i / page); mem[i] != want && !own[i/page] {
			t.Fatalf("page %d reads %d, want %d", i/page, mem[i], want)
		}
	}
	holes := [][2]int{{4, 8}, {250, 260}}
	for _, h := range holes {
		if err := unix.Madvise(mem[h[0]*page:h[1]*page], unix.MADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
	}
	start := uintptr(unsafe.Pointer(&mem[0]))
	if e := pagemapEntry(t, pm, start+uintptr(256*page)); e != 0 {
		t.Fatalf("page 256, a hole at a chunk's start: entry %#x, want nothing", e)
	}

	n, _, err := dropFilePages(pm, exeMapping{start, start + uintptr(len(mem))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Runs [0,8) [9,256) [260,270) [271,300): the holes 4-7 and 250-255
	// inside them count, 256-259 at the second chunk's start do not.
	if want := (8 + 247 + 10 + 29) * page; n != want {
		t.Errorf("advised %d bytes away, want %d", n, want)
	}
	for i := range pages {
		e := pagemapEntry(t, pm, start+uintptr(i*page))
		if own[i] != ownCopy(e) || (!own[i] && e&pagemapPresent != 0) {
			t.Errorf("page %d: entry %#x (own copy: %v)", i, e, own[i])
		}
	}
	for i := range own {
		if mem[i*page] != 0xee {
			t.Errorf("own page %d lost what was written", i)
		}
	}
}

// Where pagemap says nothing of a page (no page is mapped yet), no run
// starts.
func TestDropFilePagesUnmapsNothingPagemapSaysNothingOf(t *testing.T) {
	pm := openPagemap(t)
	mem := mapFile(t, 64)
	start := uintptr(unsafe.Pointer(&mem[0]))
	n, _, err := dropFilePages(pm, exeMapping{start, start + uintptr(len(mem))}, nil)
	if err != nil || n != 0 {
		t.Errorf("dropped %d bytes (%v), want 0", n, err)
	}
}

// exeResident is how much of the executable's read-only mappings superd
// (pid) has mapped now, and their size, from its smaps.
func exeResident(t *testing.T, pid int, exe string) (rss, size int) {
	t.Helper()
	smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	in := false
	for line := range bytes.Lines(smaps) {
		s := strings.TrimSpace(string(line))
		if m, ok := parseMapsLine(s, exe); ok {
			in = true
			size += int(m.end - m.start)
			continue
		}
		if k, v, ok := strings.Cut(s, ":"); ok && in && k == "Rss" {
			var kb int
			fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb)
			rss += kb << 10
			in = false
		}
	}
	return rss, size
}

// Each time it goes idle — after start-up, and after a scrape that
// allocated too little to be worth a collection — superd keeps mapped only
// the executable's pages it uses next: before, 87 % of its code and 82 % of
// its read-only data stayed counted in its RSS after start-up, and a
// scrape added 5 MB more for good.
func TestIdleSuperdUnmapsItsExecutable(t *testing.T) {
	dir := t.TempDir()
	port, adminPort := freePort(t), freePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", adminPort)
	cfg := writeFile(t, dir, "superd.yaml", fmt.Sprintf(`
admin: {listen: "%s"}
services:
  echo:
    listen: tcp://127.0.0.1:%d
    internal: echo
`, admin, port))
	r := startSuperd(t, cfg, admin)
	pid := r.cmd.Process.Pid
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Polled: going idle is superd's own decision, a second after its
	// last event, and nothing outside it can wait for that.
	idle := func(when string) int {
		t.Helper()
		var rss, size int
		if !waitUntil(20*time.Second, func() bool {
			rss, size = exeResident(t, pid, exe)
			return size > 0 && rss < size/3
		}) {
			t.Fatalf("%s: superd idle still maps %d of its executable's %d read-only bytes", when, rss, size)
		}
		t.Logf("%s: %d KiB of %d KiB mapped", when, rss>>10, size>>10)
		return rss
	}
	before := idle("idle after start-up")
	get(t, "http://"+admin+"/metrics")
	if busy, _ := exeResident(t, pid, exe); busy <= before {
		t.Fatalf("a scrape mapped nothing more (%d KiB, %d before): the test shows nothing", busy>>10, before>>10)
	}
	idle("idle after a scrape")
}

func TestIdleUnmapFromTheEnvironment(t *testing.T) {
	for v, want := range map[string]bool{"": true, "1": true, "0": false} {
		t.Setenv("SUPERD_IDLE_UNMAP", v)
		if got, err := idleUnmap(); err != nil || got != want {
			t.Errorf("SUPERD_IDLE_UNMAP=%q: %v, %v; want %v", v, got, err, want)
		}
	}
	for _, bad := range []string{"yes", "2", " 0"} {
		t.Setenv("SUPERD_IDLE_UNMAP", bad)
		if _, err := idleUnmap(); err == nil || !strings.Contains(err.Error(), "SUPERD_IDLE_UNMAP") {
			t.Errorf("SUPERD_IDLE_UNMAP=%q: error %v, want one naming the variable", bad, err)
		}
	}
}

// Going idle drops this process's mappings of its executable only when
// idleMemory.unmap says so (SUPERD_IDLE_UNMAP=0 keeps them).
func TestGoingIdleUnmapsOnlyWhenAsked(t *testing.T) {
	openPagemap(t)
	old := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(old)
		debug.SetMemoryLimit(oldLimit)
	})
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	before, size := exeResident(t, pid, exe)
	if before < size/10 {
		t.Skipf("only %d of %d bytes of the test binary mapped: nothing to tell apart", before, size)
	}
	g := newIdleMemory(cgroupMemory{})
	g.unmap = false
	g.set(true)
	kept, _ := exeResident(t, pid, exe)
	g.set(false)
	g.unmap = true
	g.set(true)
	dropped, _ := exeResident(t, pid, exe)
	g.set(false)
	if kept < before/2 || dropped > kept/2 {
		t.Errorf("mapped bytes of the executable: %d before, %d after going idle with unmap off, %d with it on", before, kept, dropped)
	}
}
