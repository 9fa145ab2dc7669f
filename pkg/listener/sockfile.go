package listener

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Unlink removes the file of a UNIX socket address, as when a service is
// removed on reload; it does nothing for other addresses or when the file is
// already gone, and refuses to remove anything but a socket.
//
// The caller must not unlink an address that a socket still in use is bound
// to: after a reload that reopened the same path (say, with a new file_mode),
// unlinking the old address would remove the new socket's file.
func Unlink(a Address) error {
	if !a.isSocketFile() {
		return nil
	}
	return removeSocketFile(a.Path)
}

// removeSocketFile removes path if it is a socket: a socket file left behind
// by an earlier run (or a crash) would make bind fail with EADDRINUSE
// forever, while any other file there is someone's data.
func removeSocketFile(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket (%s); superd removes only stale sockets", path, fileType(fi.Mode()))
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func fileType(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case fs.ModeDir:
		return "a directory"
	case fs.ModeSymlink:
		return "a symbolic link"
	case fs.ModeNamedPipe:
		return "a named pipe"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		return "a device"
	}
	return "mode " + m.String()
}
