package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Code pages.
//
// RSS counts every page of superd's executable that superd has mapped, and
// the kernel maps a file 64 KiB at a time around each page a process
// touches, when those pages are in the page cache: after start-up, 9 MB
// of the 11 MB binary stayed mapped (YAML parsing, configuration checks,
// binding, HTTP set-up, each library's initialisation), where the idle
// loop needs 1.5 MB, a connection's path 2.7 MB more and a /metrics
// scrape 5 MB more. So each time superd goes idle it drops its mappings of
// the executable's read-only pages (madvise MADV_DONTNEED). The pages
// stay in the page cache, charged to the same memory cgroup as before,
// and the kernel maps back each page superd uses next, with a minor fault
// while the page is still cached (a disk read if the kernel has since
// reclaimed it). Measured: 25-30 minor faults instead of 0-7 for a
// connection after an idle period, about 0.1 ms of its latency (50 for
// the first after start-up); the unmapping itself costs the idle loop
// ~0.5 ms, at most once a second (idleAfter). What superd ran only to
// start stays unmapped, and, mapped by no process, loses the protection
// the kernel's reclaim gives mapped executable pages.
//
// MADV_DONTNEED on a private file mapping also discards the pages that are
// the process's own copy of a file page (copy-on-write): a debugger's
// breakpoint, a uprobe, a relocated page of a position-independent binary.
// Those are kept: /proc/self/pagemap says which pages are the file's, and
// only runs of those are unmapped, each right after its entries are read
// (a page written within those microseconds would still be lost). Where
// pagemap cannot be read, or says nothing, nothing is unmapped.

// idleUnmap says whether superd drops its executable's mappings when it
// goes idle: yes unless SUPERD_IDLE_UNMAP=0, for a host where even the
// microseconds in which a breakpoint or uprobe written into superd's code
// could be lost matter, or where RSS counts for nothing.
func idleUnmap() (bool, error) {
	switch v := os.Getenv("SUPERD_IDLE_UNMAP"); v {
	case "", "1":
		return true, nil
	case "0":
		return false, nil
	default:
		return false, fmt.Errorf("SUPERD_IDLE_UNMAP=%q: want 1 (drop the executable's mappings when idle, the default) or 0 (keep them)", v)
	}
}

// exeMapping is one read-only mapping of the executable.
type exeMapping struct{ start, end uintptr }

// exeMappings lists the read-only private mappings of the file exe in
// maps, the text of /proc/self/maps.
func exeMappings(maps []byte, exe string) []exeMapping {
	var out []exeMapping
	for line := range bytes.Lines(maps) {
		if m, ok := parseMapsLine(string(bytes.TrimSuffix(line, []byte("\n"))), exe); ok {
			out = append(out, m)
		}
	}
	return out
}

// parseMapsLine reads one line of /proc/self/maps ("start-end perms offset
// dev inode path", one space apart but for the padding before the path)
// and reports whether it maps exe read-only and private. The path is the
// rest of the line; it may hold spaces.
func parseMapsLine(line, exe string) (exeMapping, bool) {
	f := strings.SplitN(line, " ", 6)
	if len(f) != 6 || f[2] == "" || f[3] == "" || f[4] == "" || strings.TrimLeft(f[5], " ") != exe {
		return exeMapping{}, false
	}
	rng, perms := f[0], f[1]
	if len(perms) != 4 || perms[0] != 'r' || perms[1] != '-' || (perms[2] != 'x' && perms[2] != '-') || perms[3] != 'p' {
		return exeMapping{}, false
	}
	lo, hi, _ := strings.Cut(rng, "-")
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	if err1 != nil || err2 != nil || end <= start {
		return exeMapping{}, false
	}
	return exeMapping{uintptr(start), uintptr(end)}, true
}

// Bits of a pagemap entry (Documentation/admin-guide/mm/pagemap.rst), in
// the machine's byte order.
const (
	pagemapPresent = 1 << 63
	pagemapSwapped = 1 << 62
	pagemapFile    = 1 << 61
)

// filePage reports whether a pagemap entry is a page mapped from the file.
func filePage(entry uint64) bool {
	return entry&(pagemapPresent|pagemapSwapped|pagemapFile) == pagemapPresent|pagemapFile
}

// ownCopy reports whether a pagemap entry is a page only this process has:
// a present page not of the file, or one swapped out (only anonymous
// memory is).
func ownCopy(entry uint64) bool {
	return entry&pagemapSwapped != 0 || entry&(pagemapPresent|pagemapFile) == pagemapPresent
}

// pagemapChunk is how many pages' entries dropFilePages reads at a time.
// Each chunk's runs are unmapped right after its entries are read, so a
// page the process writes meanwhile (a breakpoint set just then) has
// microseconds, not a whole mapping's pass, in which it would be lost.
const pagemapChunk = 256

// dropFilePages unmaps the pages of m that are the file's, keeping every
// page that is the process's own copy; pagemap is /proc/self/pagemap, buf
// a scratch buffer it may grow. A run to unmap begins only at a page
// pagemap says is the file's (an entry of zeros, a page not mapped, says
// nothing: it may lie inside a run, never start one), and ends before a
// page that is the process's own. It returns how many bytes its runs
// span (their pages not mapped included) and the buffer.
func dropFilePages(pagemap *os.File, m exeMapping, buf []byte) (int, []byte, error) {
	page := uintptr(os.Getpagesize())
	if cap(buf) < 8*pagemapChunk {
		buf = make([]byte, 8*pagemapChunk)
	}
	dropped := 0
	for lo := m.start; lo < m.end; lo += pagemapChunk * page {
		n := int(min((m.end-lo)/page, pagemapChunk))
		entries := buf[:8*n]
		if _, err := pagemap.ReadAt(entries, int64(lo/page)*8); err != nil {
			return dropped, buf, err
		}
		runStart := -1 // first page of the run being gathered
		for i := 0; i <= n; i++ {
			var e uint64
			if i < n {
				e = binary.NativeEndian.Uint64(entries[8*i:])
			}
			switch {
			case i < n && filePage(e):
				if runStart < 0 {
					runStart = i
				}
			case i < n && !ownCopy(e):
				// Not mapped: nothing to unmap; a run may go on over it.
			case runStart >= 0:
				addr := lo + uintptr(runStart)*page
				length := uintptr(i-runStart) * page
				if _, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, length, unix.MADV_DONTNEED); errno != 0 {
					return dropped, buf, errno
				}
				dropped += int(length)
				runStart = -1
			}
		}
	}
	return dropped, buf, nil
}

// codePages drops the executable's mappings for idleMemory. The
// executable's read-only mappings are fixed from exec to exit, so they are
// read from /proc/self/maps once, at the first drop; pagemap, which
// changes, is read at every one.
type codePages struct {
	found bool
	maps  []exeMapping
	buf   []byte // pagemap entries, kept between drops
}

// drop unmaps the executable's read-only pages that are the file's (see
// "Code pages" above). It does nothing where /proc cannot say which they
// are.
func (c *codePages) drop() {
	if !c.found {
		c.found = true
		exe, err := os.Readlink("/proc/self/exe")
		if err != nil {
			return
		}
		maps, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			return
		}
		c.maps = exeMappings(maps, exe)
	}
	if len(c.maps) == 0 {
		return
	}
	pagemap, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return
	}
	defer pagemap.Close()
	for _, m := range c.maps {
		if _, c.buf, err = dropFilePages(pagemap, m, c.buf); err != nil {
			return
		}
	}
}
