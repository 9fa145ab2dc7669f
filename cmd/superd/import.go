package main

import (
	"fmt"
	"io"
)

// importCmd converts an xinetd or inetd configuration to superd YAML.
func importCmd(args []string, stdout, stderr io.Writer) error {
	return usageError{fmt.Sprintf("import is not implemented yet (args %v)", args)}
}
