package server

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// xsysFDs is what receivedFDs replaces: x/sys's parsers. ok is false
// where they reject oob — or panic on it: ParseUnixRights indexes past
// the end of an SCM_RIGHTS message whose length is not a multiple of 4
// (found by FuzzReceivedFDs; the kernel never writes one).
func xsysFDs(oob []byte) (fds []int, ok bool) {
	defer func() {
		if recover() != nil {
			fds, ok = nil, false
		}
	}()
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, false
	}
	for i := range msgs {
		if r, err := unix.ParseUnixRights(&msgs[i]); err == nil {
			fds = append(fds, r...)
		}
	}
	return fds, true
}

// cmsgs joins control messages as the kernel lays them out.
func cmsgs(parts ...[]byte) []byte { return slices.Concat(parts...) }

func TestReceivedFDsReadsWhatTheKernelWrites(t *testing.T) {
	creds := unix.UnixCredentials(&unix.Ucred{Pid: 1, Uid: 2, Gid: 3})
	for _, tc := range []struct {
		name string
		oob  []byte
		want []int
	}{
		{"none", nil, nil},
		{"one", unix.UnixRights(7), []int{7}},
		{"a spawn's three", unix.UnixRights(5, 6, 9), []int{5, 6, 9}},
		{"an odd count (padding after it)", unix.UnixRights(3, 4, 5), []int{3, 4, 5}},
		{"credentials between two", cmsgs(unix.UnixRights(10), creds, unix.UnixRights(11, 12)), []int{10, 11, 12}},
		{"as many as a spawn carries", unix.UnixRights(make([]int, maxSpawnFiles)...), make([]int, maxSpawnFiles)},
	} {
		got := receivedFDs(nil, tc.oob)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		if x, _ := xsysFDs(tc.oob); !slices.Equal(got, x) {
			t.Errorf("%s: %v, x/sys reads %v", tc.name, got, x)
		}
	}
	// Appends to what it is given, and allocates nothing once that has room.
	buf := make([]int, 0, 8)
	oob := unix.UnixRights(5, 6, 9)
	if n := testing.AllocsPerRun(100, func() { buf = receivedFDs(buf[:0], oob) }); n != 0 {
		t.Errorf("%v allocations per call, want 0", n)
	}
}

// On any input receivedFDs reads what x/sys reads where x/sys accepts it,
// and never more than the input holds where it does not.
func FuzzReceivedFDs(f *testing.F) {
	f.Add(unix.UnixRights(1, 2, 3))
	f.Add(cmsgs(unix.UnixRights(4), unix.UnixCredentials(&unix.Ucred{}), unix.UnixRights(5)))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, oob []byte) {
		got := receivedFDs(nil, oob)
		if x, ok := xsysFDs(oob); ok && !slices.Equal(got, x) {
			t.Errorf("%v, x/sys reads %v", got, x)
		}
		if len(got)*4 > len(oob) {
			t.Errorf("%d fds from %d bytes", len(got), len(oob))
		}
	})
}
