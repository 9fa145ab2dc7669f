package builtin

import (
	"encoding/binary"
	"errors"
	"time"
)

// ErrUnknown is returned, wrapped with the name, when ServeStream is asked
// for a service that Valid rejects.
var ErrUnknown = errors.New("unknown built-in service")

// The service names, as written after `internal:`.
const (
	nameEcho    = "echo"
	nameDiscard = "discard"
	nameDaytime = "daytime"
	nameTime    = "time"
	nameChargen = "chargen"
)

// Valid reports whether name is one of the built-in services.
func Valid(name string) bool {
	switch name {
	case nameEcho, nameDiscard, nameDaytime, nameTime, nameChargen:
		return true
	}
	return false
}

// Names returns the built-in service names in alphabetical order; the
// slice is new on every call and the caller may keep or change it.
func Names() []string {
	return []string{nameChargen, nameDaytime, nameDiscard, nameEcho, nameTime}
}

// epochOffset is the number of seconds from 1900-01-01 to 1970-01-01, the
// difference between RFC 868's epoch and Unix time.
const epochOffset = 2208988800

// timeValue returns t as RFC 868 counts it: seconds since 1900-01-01 UTC,
// modulo 2^32.
func timeValue(t time.Time) uint32 {
	return uint32(t.Unix() + epochOffset)
}

// appendTime appends the 4-byte RFC 868 answer for t to b.
func appendTime(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint32(b, timeValue(t))
}

// appendDaytime appends the RFC 867 line for t to b, formatted as BSD inetd
// formats it: "%.24s\r\n" of ctime(3).
func appendDaytime(b []byte, t time.Time) []byte {
	b = t.AppendFormat(b, time.ANSIC)
	return append(b, '\r', '\n')
}

// The chargen line geometry of RFC 864 and BSD inetd.
const (
	ringLen   = 95                  // printable ASCII, 0x20 to 0x7e
	lineChars = 72                  // characters per line
	lineLen   = lineChars + 2       // with CRLF
	cycleLen  = ringLen * lineLen   // after this many bytes the stream repeats
	dgramMax  = 512                 // RFC 864: a datagram holds 0 to 512 bytes
	tableLen  = cycleLen + dgramMax // a datagram may start anywhere in a cycle
)

// chargenTable is one full cycle of the chargen stream (lines 0 to 94)
// followed by its first dgramMax bytes again, so that any datagram is one
// contiguous slice of it. Built once at init and never written afterwards:
// many goroutines read it at once.
var chargenTable = makeChargenTable()

func makeChargenTable() []byte {
	t := make([]byte, 0, tableLen)
	for line := 0; line < ringLen; line++ {
		for i := 0; i < lineChars; i++ {
			t = append(t, byte(' '+(line+i)%ringLen))
		}
		t = append(t, '\r', '\n')
	}
	return append(t, t[:dgramMax]...)
}
