package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// String returns the position as FILE:LINE:COL, the form editors jump to.
func (p Position) String() string {
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Error is one problem in a configuration: where it was written, the dotted
// key path it concerns (e.g. "services.daytime.socket.no_delay" or
// "services.daytime.listen[1]") and what is wrong.
type Error struct {
	Pos Position
	// Key is empty for errors that concern no key, such as YAML syntax
	// errors.
	Key string
	Msg string
}

// Error formats e as FILE:LINE:COL: KEY: message (without "KEY: " when Key
// is empty).
func (e Error) Error() string {
	if e.Key == "" {
		return e.Pos.String() + ": " + e.Msg
	}
	return e.Pos.String() + ": " + e.Key + ": " + e.Msg
}

// Errors is every problem found in a configuration, sorted by file, line
// and column; Load and Parse return it (never an empty one) when a
// configuration is invalid.
type Errors []Error

// Error joins the errors with newlines, one per line.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

func compareErrors(a, b Error) int {
	return cmp.Or(
		cmp.Compare(a.Pos.File, b.Pos.File),
		cmp.Compare(a.Pos.Line, b.Pos.Line),
		cmp.Compare(a.Pos.Col, b.Pos.Col),
		cmp.Compare(a.Key, b.Key),
		cmp.Compare(a.Msg, b.Msg),
	)
}

// sorted returns the errors in reading order, each once: defaults are
// re-applied to every service, so the same error can be found many times.
func (es Errors) sorted() Errors {
	out := slices.Clone(es)
	slices.SortFunc(out, compareErrors)
	return slices.Compact(out)
}
