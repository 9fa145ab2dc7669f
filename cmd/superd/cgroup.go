package main

import (
	"os"
	"path"
	"strconv"
	"strings"
)

// cgroupMemoryLimit returns the memory limit that applies to superd's
// cgroup — the lowest of its own and its ancestors' up to the mounted
// root, cgroup v2's memory.max or v1's memory.limit_in_bytes — or 0 when
// there is none or it cannot be read. The Go runtime reads the cgroup's
// CPU limit but not its memory limit, so superd, which turns the
// collector off while it starts and while it idles, must bound those
// phases by it itself (idle.go).
func cgroupMemoryLimit() int64 {
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return 0
	}
	return memoryLimit(string(cg), string(mi), func(file string) (string, error) {
		b, err := os.ReadFile(file)
		return string(b), err
	})
}

// unlimitedMemory is where cgroup v1 limits mean "none" (v1 reports the
// largest page-aligned int64, v2 the word "max").
const unlimitedMemory = 1 << 62

// memoryLimit is cgroupMemoryLimit on the contents of /proc/self/cgroup and
// /proc/self/mountinfo, reading the limit files with read. The unified
// (v2) hierarchy wins where both are mounted with a memory controller.
func memoryLimit(procCgroup, mountinfo string, read func(string) (string, error)) int64 {
	for _, v2 := range []bool{true, false} {
		dir, mount, ok := memoryCgroupDir(procCgroup, mountinfo, v2)
		if !ok {
			continue
		}
		file := "memory.limit_in_bytes"
		if v2 {
			file = "memory.max"
		}
		lowest := int64(0)
		for {
			text, err := read(path.Join(dir, file))
			if err == nil {
				if n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64); err == nil && n > 0 && n < unlimitedMemory && (lowest == 0 || n < lowest) {
					lowest = n
				}
			}
			if dir == mount || !strings.HasPrefix(dir, mount+"/") {
				break
			}
			dir = path.Dir(dir)
		}
		if lowest > 0 {
			return lowest
		}
		// A v2 hierarchy without the memory controller (systemd's
		// hybrid layout): v1's may have it.
	}
	return 0
}

// memoryCgroupDir finds the directory of superd's memory cgroup (v2: the
// unified hierarchy; v1: the hierarchy with the memory controller) and the
// mount point it lies under.
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
	if cgPath == "" {
		return "", "", false
	}
	for _, line := range strings.Split(mountinfo, "\n") {
		// ID parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 {
			continue
		}
		if v2 && g[0] != "cgroup2" || !v2 && (g[0] != "cgroup" || !hasWord(g[2], ",", "memory")) {
			continue
		}
		root, mount := unescapeMountinfo(f[3]), unescapeMountinfo(f[4])
		rel := cgPath
		switch {
		case root == "/":
		case rel == root:
			rel = "/"
		case strings.HasPrefix(rel, root+"/"):
			rel = rel[len(root):]
		default:
			// A cgroup outside what is mounted here (a container
			// seeing its own cgroup as the root): the mount is the
			// closest it gets.
			rel = "/"
		}
		return path.Join(mount, rel), path.Clean(mount), true
	}
	return "", "", false
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
