package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStrictModesRefusesFilesOthersCanWrite(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file away")
	}
	dir := t.TempDir()
	body := "services:\n  x:\n    listen: tcp://127.0.0.1:7\n    internal: echo\n"
	write := func(name string, mode os.FileMode, uid int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		os.Chown(p, uid, 0)
		return p
	}
	cases := []struct {
		name, file, want string
	}{
		{"a root-owned 0644 file is read", write("ok.yaml", 0o644, 0), ""},
		{"a group-writable file is refused", write("g.yaml", 0o664, 0), "writable by group or others (mode 0664)"},
		{"a world-writable file is refused", write("o.yaml", 0o646, 0), "writable by group or others (mode 0646)"},
		{"a file owned by another user is refused", write("u.yaml", 0o644, 65534), "owned by uid 65534, not root"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.file, Options{StrictModes: true})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
	t.Run("an include others can write is refused at the include", func(t *testing.T) {
		sub := filepath.Join(dir, "conf.d")
		os.Mkdir(sub, 0o755)
		inc := filepath.Join(sub, "x.yaml")
		os.WriteFile(inc, []byte(body), 0o666)
		os.Chmod(inc, 0o666)
		main := filepath.Join(dir, "main.yaml")
		os.WriteFile(main, []byte("include: [conf.d/*.yaml]\n"), 0o644)
		_, err := Load(main, Options{StrictModes: true})
		if err == nil || !strings.Contains(err.Error(), main+":1:") || !strings.Contains(err.Error(), "writable by group or others") {
			t.Fatalf("err = %v", err)
		}
	})
}
