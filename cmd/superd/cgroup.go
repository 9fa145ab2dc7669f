package main

import (
	"os"
	"path"
	"strconv"
	"strings"
)

// cgroupMemory is what superd's memory cgroup allows: limit, the lowest
// limit of its own and its ancestors' up to the mounted root (cgroup v2's
// memory.max, v1's memory.limit_in_bytes), and room, the least any of
// those cgroups has left below its limit now (memory.current, v1's
// memory.usage_in_bytes, less the page cache of memory.stat but shared
// memory; everything else charged there counts: a superd that is handing over to
// this one in a live upgrade, its children, kernel memory). Both are 0
// where there is no limit or it cannot be read. The Go runtime reads the
// cgroup's CPU limit but not its memory limit, so superd, which turns the
// collector off while it starts and while it idles, must bound those
// phases by it itself (idle.go).
type cgroupMemory struct {
	limit, room int64
	roomDir     string // the cgroup with the least room
}

func readCgroupMemory() cgroupMemory {
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return cgroupMemory{}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return cgroupMemory{}
	}
	return memoryOf(string(cg), string(mi), func(file string) (string, error) {
		b, err := os.ReadFile(file)
		return string(b), err
	})
}

// unlimitedMemory is where cgroup v1 limits mean "none" (v1 reports the
// largest page-aligned int64, v2 the word "max").
const unlimitedMemory = 1 << 62

// memoryOf is readCgroupMemory on the contents of /proc/self/cgroup and
// /proc/self/mountinfo, reading the cgroup's files with read. The unified
// (v2) hierarchy wins where both are mounted with a memory controller.
func memoryOf(procCgroup, mountinfo string, read func(string) (string, error)) cgroupMemory {
	number := func(file string) (int64, bool) {
		text, err := read(file)
		if err != nil {
			return 0, false
		}
		n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
		return n, err == nil && n >= 0 && n < unlimitedMemory
	}
	for _, v2 := range []bool{true, false} {
		dir, mount, ok := memoryCgroupDir(procCgroup, mountinfo, v2)
		if !ok {
			continue
		}
		limitFile, usageFile, cacheKey, shmemKey := "memory.limit_in_bytes", "memory.usage_in_bytes", "total_cache", "total_shmem"
		if v2 {
			limitFile, usageFile, cacheKey, shmemKey = "memory.max", "memory.current", "file", "shmem"
		}
		var m cgroupMemory
		for steps := strings.Count(dir, "/") + 1; steps > 0; steps-- {
			if n, ok := number(path.Join(dir, limitFile)); ok && n > 0 {
				room := n
				if u, ok := number(path.Join(dir, usageFile)); ok {
					// The usage counts the page cache of the files the
					// cgroup read (children serving files fill it up to
					// the limit); the kernel reclaims it before it kills,
					// so it is room too — all but shared memory (tmpfs),
					// which only swap could free.
					stat, _ := read(path.Join(dir, "memory.stat"))
					cache := statValue(stat, cacheKey) - statValue(stat, shmemKey)
					u -= min(max(cache, 0), u)
					room = max(n-u, 0)
				}
				if m.limit == 0 {
					m = cgroupMemory{limit: n, room: room, roomDir: dir}
				}
				if room < m.room {
					m.room, m.roomDir = room, dir
				}
				m.limit = min(m.limit, n)
			}
			if dir == mount {
				break
			}
			dir = path.Dir(dir)
		}
		if m.limit > 0 {
			return m
		}
		// A v2 hierarchy without the memory controller (systemd's
		// hybrid layout): v1's may have it.
	}
	return cgroupMemory{}
}

// statValue is key's value in the text of a memory.stat file, or 0.
func statValue(text, key string) int64 {
	for line := range strings.SplitSeq(text, "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// memoryCgroupDir finds the directory of superd's memory cgroup (v2: the
// unified hierarchy; v1: the hierarchy with the memory controller) and the
// mount point it lies under: of the mounts whose root holds the cgroup,
// the last listed (a later mount on the same point hides an earlier one).
// A cgroup outside every mount's root (a process outside its cgroup
// namespace sees "/.." in its path) has none.
func memoryCgroupDir(procCgroup, mountinfo string, v2 bool) (dir, mount string, ok bool) {
	cgPath := ""
	for _, line := range strings.Split(procCgroup, "\n") {
		// hierarchy-ID:controllers:path; the path may itself hold ':'.
		id, rest, ok1 := strings.Cut(line, ":")
		controllers, p, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || !strings.HasPrefix(p, "/") {
			continue
		}
		if v2 && id == "0" && controllers == "" || !v2 && hasWord(controllers, ",", "memory") {
			cgPath = p
			break
		}
	}
	if cgPath == "" || path.Clean(cgPath) != cgPath || hasWord(cgPath, "/", "..") {
		return "", "", false
	}
	for _, line := range strings.Split(mountinfo, "\n") {
		// ID parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, found := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !found || len(f) < 5 || len(g) < 3 {
			continue
		}
		if v2 && g[0] != "cgroup2" || !v2 && (g[0] != "cgroup" || !hasWord(g[2], ",", "memory")) {
			continue
		}
		root, mnt := unescapeMountinfo(f[3]), unescapeMountinfo(f[4])
		var rel string
		switch {
		case root == "/":
			rel = cgPath
		case cgPath == root:
			rel = "/"
		case strings.HasPrefix(cgPath, root+"/"):
			rel = cgPath[len(root):]
		default:
			continue // this mount shows another part of the hierarchy
		}
		dir, mount, ok = path.Join(mnt, rel), path.Clean(mnt), true
	}
	return dir, mount, ok
}

// hasWord says whether list, split at sep, holds word.
func hasWord(list, sep, word string) bool {
	for w := range strings.SplitSeq(list, sep) {
		if w == word {
			return true
		}
	}
	return false
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space,
// \011, \012, \134).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
