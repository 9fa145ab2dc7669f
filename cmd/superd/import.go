package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/superd/superd/pkg/importer"
)

const importUsage = "superd import [--root DIR] xinetd|inetd FILE"

// importCmd converts an xinetd or inetd configuration to superd YAML on
// stdout. Whatever cannot be converted is a warning on stderr, FILE:LINE:
// warning: MESSAGE; warnings do not change the exit code. --root reads FILE
// and every file it names (includes, /etc/services) under DIR, for the
// configuration of another host.
func importCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	root := fs.String("root", "", "read FILE and what it names under `DIR`, as if DIR were /")
	// Flags may come anywhere: before the kind, between, after the file.
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return errHelp
			}
			return usageError{err.Error() + "; usage: " + importUsage}
		}
		if rest = fs.Args(); len(rest) == 0 {
			break
		}
		pos, rest = append(pos, rest[0]), rest[1:]
	}
	if len(pos) != 2 {
		return usageError{"import needs what to convert and its file: " + importUsage}
	}
	kind, file := pos[0], pos[1]
	var run func(string, importer.FS) (importer.Result, error)
	switch kind {
	case "xinetd":
		run = importer.Xinetd
	case "inetd":
		run = importer.Inetd
	default:
		return usageError{fmt.Sprintf("import converts xinetd or inetd, not %q: %s", kind, importUsage)}
	}
	var fsys importer.FS = importer.HostFS{}
	if *root != "" {
		fsys = importer.DirFS(*root)
	}
	res, err := run(file, fsys)
	if err != nil {
		return fmt.Errorf("import %s: %w", kind, err)
	}
	if _, err := stdout.Write(res.YAML); err != nil {
		return fmt.Errorf("import %s: writing the configuration: %w", kind, err)
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(stderr, w.String())
	}
	return nil
}
