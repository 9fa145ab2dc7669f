package main

import (
	"os"
	"path"
	"testing"
)

// cgroup files as the kernel lays them out on the hosts superd meets: v1
// only (this project's VMs), v2 only (current distributions), systemd's
// hybrid layout, a container that sees its own cgroup as the root.
const (
	v1Cgroup    = "9:name=systemd:/\n5:devices:/\n4:memory:/process_api/abc\n0::/\n"
	v1Mountinfo = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
`
	v2Cgroup    = "0::/system.slice/superd.service\n"
	v2Mountinfo = `24 1 8:1 / / rw - ext4 /dev/sda1 rw
30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`
	hybridCgroup    = "6:memory:/system.slice/superd.service\n1:name=systemd:/system.slice/superd.service\n0::/system.slice/superd.service\n"
	hybridMountinfo = `25 24 0:22 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
33 25 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
`
	containerCgroup    = "0::/kubepods/pod1/ctr\n"
	containerMountinfo = `700 650 0:40 /kubepods/pod1/ctr /sys/fs/cgroup ro,nosuid - cgroup2 cgroup ro
`
)

func TestCgroupMemoryFindsTheLowestOnTheWayUp(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		procCgroup, mountinfo string
		files                 map[string]string
		want                  cgroupMemory
	}{
		{"v1, the parent's limit", v1Cgroup, v1Mountinfo, map[string]string{
			"/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": "9223372036854771712\n",
			"/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes":     "104857600\n",
			"/sys/fs/cgroup/memory/process_api/memory.usage_in_bytes":     "4857600\n",
			"/sys/fs/cgroup/memory/memory.limit_in_bytes":                 "9223372036854771712\n",
		}, cgroupMemory{limit: 100 << 20, room: 100000000}},
		{"v1, none", v1Cgroup, v1Mountinfo, map[string]string{
			"/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": "9223372036854771712\n",
		}, cgroupMemory{}},
		{"v2, the unit's own below its slice's, the slice fuller", v2Cgroup, v2Mountinfo, map[string]string{
			"/sys/fs/cgroup/system.slice/superd.service/memory.max":     "67108864\n",
			"/sys/fs/cgroup/system.slice/superd.service/memory.current": "8388608\n",
			"/sys/fs/cgroup/system.slice/memory.max":                    "536870912\n",
			"/sys/fs/cgroup/system.slice/memory.current":                "520093696\n",
		}, cgroupMemory{limit: 64 << 20, room: 16 << 20}},
		{"v2, max", v2Cgroup, v2Mountinfo, map[string]string{
			"/sys/fs/cgroup/system.slice/superd.service/memory.max": "max\n",
		}, cgroupMemory{}},
		{"v1, page cache but tmpfs counts as room", v1Cgroup, v1Mountinfo, map[string]string{
			"/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": "1000000\n",
			"/sys/fs/cgroup/memory/process_api/abc/memory.usage_in_bytes": "900000\n",
			"/sys/fs/cgroup/memory/process_api/abc/memory.stat":           "cache 1\ntotal_cache 700000\nshmem 1\ntotal_shmem 100000\n",
		}, cgroupMemory{limit: 1000000, room: 700000}},
		{"v2, page cache but shared memory counts as room", v2Cgroup, v2Mountinfo, map[string]string{
			"/sys/fs/cgroup/system.slice/superd.service/memory.max":     "1000000\n",
			"/sys/fs/cgroup/system.slice/superd.service/memory.current": "900000\n",
			"/sys/fs/cgroup/system.slice/superd.service/memory.stat":    "anon 100000\nfile 800000\nshmem 100000\ninactive_file 700000\n",
		}, cgroupMemory{limit: 1000000, room: 800000}},
		{"v2, usage unreadable: all the limit is room", v2Cgroup, v2Mountinfo, map[string]string{
			"/sys/fs/cgroup/system.slice/superd.service/memory.max": "1000\n",
		}, cgroupMemory{limit: 1000, room: 1000}},
		{"v2, over its limit: no room", v2Cgroup, v2Mountinfo, map[string]string{
			"/sys/fs/cgroup/system.slice/superd.service/memory.max":     "1000\n",
			"/sys/fs/cgroup/system.slice/superd.service/memory.current": "2000\n",
		}, cgroupMemory{limit: 1000, room: 0}},
		{"hybrid: v2 has no memory controller, v1 has", hybridCgroup, hybridMountinfo, map[string]string{
			"/sys/fs/cgroup/memory/system.slice/superd.service/memory.limit_in_bytes": "268435456\n",
		}, cgroupMemory{limit: 256 << 20, room: 256 << 20}},
		{"container: its cgroup mounted as the root", containerCgroup, containerMountinfo, map[string]string{
			"/sys/fs/cgroup/memory.max": "134217728\n",
		}, cgroupMemory{limit: 128 << 20, room: 128 << 20}},
		{"a mount of another subtree first, then the whole hierarchy", "0::/a/b\n",
			"30 24 0:26 /other /mnt/other rw - cgroup2 cgroup2 rw\n31 24 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			map[string]string{"/mnt/other/memory.max": "1048576\n", "/sys/fs/cgroup/a/b/memory.max": "50000000\n"},
			cgroupMemory{limit: 50000000, room: 50000000}},
		{"the same point mounted twice: the later one shows", "0::/a\n",
			"30 24 0:26 / /cg rw - cgroup2 cgroup2 rw\n31 24 0:27 /a /cg rw - cgroup2 cgroup2 rw\n",
			map[string]string{"/cg/a/memory.max": "1000\n", "/cg/memory.max": "2000\n"},
			cgroupMemory{limit: 2000, room: 2000}},
		{"outside the namespace's root", "0::/../../etc\n", v2Mountinfo, map[string]string{
			"/sys/etc/memory.max": "1000\n",
		}, cgroupMemory{}},
		{"nothing mounted", v2Cgroup, "24 1 8:1 / / rw - ext4 /dev/sda1 rw\n", nil, cgroupMemory{}},
		{"a mount point with a space", "0::/a\n", `30 24 0:26 / /cg\040root rw - cgroup2 cgroup2 rw
`, map[string]string{"/cg root/a/memory.max": "1000\n"}, cgroupMemory{limit: 1000, room: 1000}},
	} {
		read := func(file string) (string, error) {
			if v, ok := tc.files[file]; ok {
				return v, nil
			}
			return "", os.ErrNotExist
		}
		if got := memoryOf(tc.procCgroup, tc.mountinfo, read); got.limit != tc.want.limit || got.room != tc.want.room {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// The cgroup with the least room is named, for the message that refuses an
// upgrade: here the slice, fuller than the unit with the lower limit.
func TestCgroupMemoryNamesTheFullestCgroup(t *testing.T) {
	files := map[string]string{
		"/sys/fs/cgroup/system.slice/superd.service/memory.max":     "67108864\n",
		"/sys/fs/cgroup/system.slice/superd.service/memory.current": "8388608\n",
		"/sys/fs/cgroup/system.slice/memory.max":                    "536870912\n",
		"/sys/fs/cgroup/system.slice/memory.current":                "520093696\n",
	}
	read := func(file string) (string, error) {
		if v, ok := files[file]; ok {
			return v, nil
		}
		return "", os.ErrNotExist
	}
	if m := memoryOf(v2Cgroup, v2Mountinfo, read); m.roomDir != "/sys/fs/cgroup/system.slice" {
		t.Errorf("roomDir %q, want the slice", m.roomDir)
	}
}

// The memory cgroup this test runs in, read from the real files: whatever
// it is, it must parse (zero where there is no limit).
func TestReadCgroupMemoryReadsThisHost(t *testing.T) {
	if m := readCgroupMemory(); m.limit < 0 || m.limit >= unlimitedMemory || m.room < 0 || m.room > m.limit {
		t.Errorf("readCgroupMemory() = %+v", m)
	}
}

func FuzzCgroupMemory(f *testing.F) {
	f.Add(v1Cgroup, v1Mountinfo, "104857600")
	f.Add(v2Cgroup, v2Mountinfo, "max")
	f.Add(hybridCgroup, hybridMountinfo, "-1")
	f.Add(containerCgroup, containerMountinfo, "12\n")
	f.Fuzz(func(t *testing.T, procCgroup, mountinfo, value string) {
		reads := 0
		read := func(file string) (string, error) {
			if reads++; reads > 1000 {
				t.Fatalf("more than 1000 reads walking up to the mount")
			}
			if path.Clean(file) != file || hasWord(file, "/", "..") {
				t.Errorf("read %q: not a clean path under a mount", file)
			}
			return value, nil
		}
		if m := memoryOf(procCgroup, mountinfo, read); m.limit < 0 || m.limit >= unlimitedMemory || m.room < 0 || m.room > m.limit {
			t.Errorf("%+v", m)
		}
	})
}
