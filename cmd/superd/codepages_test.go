package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
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

// pagemapEntry reads the pagemap entry of the page at addr.
func pagemapEntry(t *testing.T, addr uintptr) uint64 {
	t.Helper()
	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	var b [8]byte
	if _, err := pm.ReadAt(b[:], int64(addr/uintptr(os.Getpagesize()))*8); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b[:])
}

// A private file mapping like the executable's: every page that is the
// file's is unmapped and comes back with the file's content; a page the
// process wrote (as a debugger writes a breakpoint) keeps what was written.
func TestDropFilePagesKeepsThePagesTheProcessChanged(t *testing.T) {
	page := os.Getpagesize()
	const pages = 16
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
	defer unix.Munmap(mem)
	sum := 0 // reading maps each page
	for i := 0; i < len(mem); i += page {
		sum += int(mem[i])
	}
	if sum != pages*(pages-1)/2 {
		t.Fatalf("mapping reads %d, want %d", sum, pages*(pages-1)/2)
	}
	const changed = 5
	if err := unix.Mprotect(mem[changed*page:(changed+1)*page], unix.PROT_READ|unix.PROT_WRITE); err != nil {
		t.Fatal(err)
	}
	mem[changed*page] = 0xee
	if err := unix.Mprotect(mem[changed*page:(changed+1)*page], unix.PROT_READ); err != nil {
		t.Fatal(err)
	}
	start := uintptr(unsafe.Pointer(&mem[0]))
	for i := range pages {
		if e := pagemapEntry(t, start+uintptr(i*page)); e&pagemapPresent == 0 {
			t.Fatalf("page %d not mapped after being read (entry %#x)", i, e)
		}
	}

	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	n, _, err := dropFilePages(pm, exeMapping{start, start + uintptr(len(mem))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != (pages-1)*page {
		t.Errorf("dropped %d bytes, want %d (all pages but the changed one)", n, (pages-1)*page)
	}
	for i := range pages {
		e := pagemapEntry(t, start+uintptr(i*page))
		if i == changed {
			if !ownCopy(e) {
				t.Errorf("changed page: entry %#x, want the process's own copy still mapped", e)
			}
		} else if e&pagemapPresent != 0 {
			t.Errorf("page %d still mapped (entry %#x)", i, e)
		}
	}
	if mem[changed*page] != 0xee {
		t.Errorf("changed page lost what was written: %#x", mem[changed*page])
	}
	for i := 0; i < len(mem); i += page {
		if want := byte(i / page); i/page != changed && mem[i] != want {
			t.Errorf("page %d reads %d after being mapped again, want %d", i/page, mem[i], want)
		}
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

// Once idle after start-up, superd keeps mapped only the code it runs next:
// before, 87 % of its code and 82 % of its read-only data stayed counted
// in its RSS.
func TestIdleSuperdUnmapsTheCodeItRanToStart(t *testing.T) {
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
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", r.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var rss, size int
	// Polled: going idle is superd's own decision, a second after its
	// last event, and nothing outside it can wait for that.
	if !waitUntil(20*time.Second, func() bool {
		rss, size = exeResident(t, r.cmd.Process.Pid, exe)
		return size > 0 && rss < size/3
	}) {
		t.Fatalf("superd idle still maps %d of its executable's %d read-only bytes", rss, size)
	}
	t.Logf("idle: %d KiB of %d KiB mapped", rss>>10, size>>10)
}
