package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Code pages.
//
// RSS counts every page of superd's executable that superd has mapped, and
// the kernel maps them 64 KiB at a time around each one superd runs or
// reads: after start-up, 9 MB of the 11 MB binary stayed mapped (YAML
// parsing, configuration checks, binding, HTTP set-up, each library's
// initialisation), where the idle loop needs 1.5 MB and a connection's
// path 2.6 MB more. So when superd goes idle after start-up or after a
// busy period (the times idleMemory collects), it unmaps the executable's
// read-only pages (madvise MADV_DONTNEED). They stay in the page cache,
// charged to the same memory cgroup as before, and the kernel maps back
// each page superd uses next with a minor fault (measured: 50 instead of
// 7 for the first connection after start-up, which took 0.55 ms instead
// of 0.51; 0.4 ms for the unmapping itself); what superd ran only to
// start stays unmapped, and is the first the kernel reclaims when it needs
// memory, as no process maps it.
//
// MADV_DONTNEED on a private file mapping also discards the pages that are
// the process's own copy of a file page (copy-on-write): a debugger's
// breakpoint, a uprobe, a relocated page of a position-independent binary.
// Those are kept: /proc/self/pagemap says which pages are the file's, and
// only those are unmapped. Where pagemap cannot be read, nothing is.

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

// Bits of a pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
const (
	pagemapPresent = 1 << 63
	pagemapSwapped = 1 << 62
	pagemapFile    = 1 << 61
)

// ownCopy reports whether a pagemap entry is a page only this process has:
// a present page not of the file, or one swapped out (only anonymous
// memory is).
func ownCopy(entry uint64) bool {
	return entry&pagemapSwapped != 0 || entry&(pagemapPresent|pagemapFile) == pagemapPresent
}

// dropFilePages unmaps the pages of [start, end) that are the file's,
// keeping every page that is the process's own copy; pagemap is
// /proc/self/pagemap, buf a scratch buffer it may grow. It returns how
// many bytes it unmapped (present or not) and the buffer.
func dropFilePages(pagemap *os.File, m exeMapping, buf []byte) (int, []byte, error) {
	page := uintptr(os.Getpagesize())
	n := int((m.end - m.start) / page)
	if cap(buf) < 8*n {
		buf = make([]byte, 8*n)
	}
	buf = buf[:8*n]
	if _, err := pagemap.ReadAt(buf, int64(m.start/page)*8); err != nil {
		return 0, buf, err
	}
	dropped := 0
	runStart := -1 // first page of the run of file pages being gathered
	for i := 0; i <= n; i++ {
		own := i == n || ownCopy(binary.LittleEndian.Uint64(buf[8*i:]))
		switch {
		case !own && runStart < 0:
			runStart = i
		case own && runStart >= 0:
			addr := m.start + uintptr(runStart)*page
			length := uintptr(i-runStart) * page
			if _, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, length, unix.MADV_DONTNEED); errno != 0 {
				return dropped, buf, errno
			}
			dropped += int(length)
			runStart = -1
		}
	}
	return dropped, buf, nil
}

// dropCodePages unmaps the executable's read-only pages that are the
// file's (see "Code pages" above) and returns how many bytes of mappings
// it went over. It does nothing where /proc cannot say which they are.
func dropCodePages() int {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0
	}
	pagemap, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return 0
	}
	defer pagemap.Close()
	var buf []byte
	total := 0
	for _, m := range exeMappings(maps, exe) {
		var n int
		if n, buf, err = dropFilePages(pagemap, m, buf); err != nil {
			break
		}
		total += n
	}
	return total
}
