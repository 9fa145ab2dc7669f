package builtin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"
)

func TestValidAndNames(t *testing.T) {
	t.Parallel()
	names := Names()
	want := []string{"chargen", "daytime", "discard", "echo", "time"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("Names() = %v, want %v", names, want)
	}
	for _, n := range names {
		if !Valid(n) {
			t.Errorf("Valid(%q) = false", n)
		}
	}
	names[0] = "changed"
	if Names()[0] != "chargen" {
		t.Error("changing the slice Names returned changed the next one")
	}
	for _, n := range []string{"", "Echo", "echo ", "tcpmux", "qotd", "chargen\x00"} {
		if Valid(n) {
			t.Errorf("Valid(%q) = true", n)
		}
	}
}

func TestEchoStreamIsByteExactOn1MiB(t *testing.T) {
	t.Parallel()
	payload := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{1}).Read(payload)

	client, done := startStream(t, t.Context(), "echo", nil)
	wrote := make(chan error, 1)
	go func() {
		_, err := client.Write(payload)
		if err == nil {
			// Half-close: the echo of everything written must still arrive.
			err = client.CloseWrite()
		}
		wrote <- err
	}()
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if err := recv(t, wrote, "client write"); err != nil {
		t.Fatalf("client write: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echo differs: got %d bytes, want %d", len(got), len(payload))
	}
	if err := recv(t, done, "ServeStream"); err != nil {
		t.Fatalf("ServeStream: %v", err)
	}
}

func TestEchoStreamAnswersEachChunkBeforeEOF(t *testing.T) {
	t.Parallel()
	client, done := startStream(t, t.Context(), "echo", nil)
	r := bufio.NewReader(client)
	for i := range 100 {
		msg := strings.Repeat("x", i) + "\n"
		if _, err := client.Write([]byte(msg)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		got, err := r.ReadString('\n')
		if err != nil || got != msg {
			t.Fatalf("round %d: got %q, %v; want %q", i, got, err, msg)
		}
	}
	client.CloseWrite()
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("after half-close: %v, want EOF", err)
	}
	if err := recv(t, done, "ServeStream"); err != nil {
		t.Fatalf("ServeStream: %v", err)
	}
}

func TestDiscardStreamReadsUntilEOFAndAnswersNothing(t *testing.T) {
	t.Parallel()
	client, done := startStream(t, t.Context(), "discard", nil)
	payload := bytes.Repeat([]byte("discard me\r\n"), 100_000)
	if _, err := client.Write(payload); err != nil {
		t.Fatalf("write: %v", err)
	}
	client.CloseWrite()
	got, err := io.ReadAll(client)
	if err != nil || len(got) != 0 {
		t.Fatalf("read: %q, %v; want nothing and EOF", got, err)
	}
	if err := recv(t, done, "ServeStream"); err != nil {
		t.Fatalf("ServeStream: %v", err)
	}
}

func TestDaytimeStreamSendsOneCtimeLine(t *testing.T) {
	t.Parallel()
	client, done := startStream(t, t.Context(), "daytime", fixedClock(testClock))
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != "Wed Nov 25 07:22:41 2026\r\n" {
		t.Fatalf("daytime line = %q", got)
	}
	line, ok := strings.CutSuffix(string(got), "\r\n")
	if !ok {
		t.Fatalf("%q does not end in CRLF", got)
	}
	parsed, err := time.Parse(time.ANSIC, line)
	if err != nil {
		t.Fatalf("parse %q: %v", line, err)
	}
	if !parsed.Equal(testClock) {
		t.Fatalf("parsed %v, want %v", parsed, testClock)
	}
	if err := recv(t, done, "ServeStream"); err != nil {
		t.Fatalf("ServeStream: %v", err)
	}
}

func TestDaytimeFormatMatchesCtime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		at   time.Time
		want string
	}{
		{"a two-digit day", testClock, "Wed Nov 25 07:22:41 2026\r\n"},
		{"a one-digit day is space-padded as ctime pads it", time.Date(2026, 11, 5, 0, 0, 9, 0, time.UTC), "Thu Nov  5 00:00:09 2026\r\n"},
		{"fractions of a second are dropped", time.Date(1999, 12, 31, 23, 59, 59, 999_999_999, time.UTC), "Fri Dec 31 23:59:59 1999\r\n"},
		{"the clock's own zone is used", time.Date(2026, 1, 1, 1, 0, 0, 0, time.FixedZone("X", 3600)), "Thu Jan  1 01:00:00 2026\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendDaytime(nil, tt.at)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTimeStreamSendsSecondsSince1900(t *testing.T) {
	t.Parallel()
	client, done := startStream(t, t.Context(), "time", fixedClock(testClock))
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if len(got) != 4 {
		t.Fatalf("got %d bytes, want 4", len(got))
	}
	if v, want := binary.BigEndian.Uint32(got), uint32(testClock.Unix()+2208988800); v != want {
		t.Fatalf("time = %d, want %d", v, want)
	}
	if err := recv(t, done, "ServeStream"); err != nil {
		t.Fatalf("ServeStream: %v", err)
	}
}

func TestTimeValueMatchesRFC868Examples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		at   time.Time
		want uint32
	}{
		{"the Unix epoch is 2208988800", time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), 2208988800},
		{"1976-01-01 is 2398291200", time.Date(1976, 1, 1, 0, 0, 0, 0, time.UTC), 2398291200},
		{"1980-01-01 is 2524521600", time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC), 2524521600},
		{"1983-05-01 is 2629584000", time.Date(1983, 5, 1, 0, 0, 0, 0, time.UTC), 2629584000},
		{"1900-01-01 is 0", time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), 0},
		{"the value wraps in February 2036", time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC), 0},
		{"the zone does not matter", time.Date(1970, 1, 1, 1, 0, 0, 0, time.FixedZone("X", 3600)), 2208988800},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := timeValue(tt.at); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestChargenStreamFollowsTheRFC864Pattern(t *testing.T) {
	t.Parallel()
	client, done := startStream(t, t.Context(), "chargen", nil)
	// Data the client sends is thrown away and must not disturb the output.
	if _, err := client.Write([]byte("ignored\r\n")); err != nil {
		t.Fatalf("write: %v", err)
	}
	r := bufio.NewReader(client)
	line := make([]byte, 74)
	for i := range 500 {
		if _, err := io.ReadFull(r, line); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if want := chargenLine(i); !bytes.Equal(line, want) {
			t.Fatalf("line %d = %q, want %q", i, line, want)
		}
	}
	if string(chargenLine(0)[:10]) != ` !"#$%&'()` || chargenLine(95)[0] != ' ' {
		t.Fatal("the test's own oracle is wrong")
	}
	// The client leaving is the normal end of a chargen session.
	client.Close()
	if err := recv(t, done, "ServeStream"); err != nil {
		t.Fatalf("ServeStream: %v", err)
	}
}

func TestChargenStreamContinuesAfterClientHalfClose(t *testing.T) {
	t.Parallel()
	client, _ := startStream(t, t.Context(), "chargen", nil)
	client.CloseWrite()
	line := make([]byte, 74)
	for i := range 200 {
		if _, err := io.ReadFull(client, line); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
	}
}

func TestStreamEndsWhenContextIsCancelled(t *testing.T) {
	t.Parallel()
	// echo and discard wait for a client that sends nothing; chargen is
	// blocked on a client that reads nothing.
	for _, name := range []string{"echo", "discard", "chargen"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(t.Context())
			client, done := startStream(t, ctx, name, nil)
			if name == "chargen" {
				// Proof that the session is under way before the cancel.
				if _, err := io.ReadFull(client, make([]byte, 74)); err != nil {
					t.Fatalf("first line: %v", err)
				}
			}
			cancel()
			err := recv(t, done, "ServeStream")
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("ServeStream = %v, want context.Canceled", err)
			}
			// The connection is closed: the client reaches its end.
			if _, err := io.Copy(io.Discard, client); err != nil && !isReset(err) {
				t.Fatalf("client read after cancel: %v", err)
			}
		})
	}
}

func TestStreamDeadlineEndsSession(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, done := startStream(t, ctx, "echo", nil)
	if err := recv(t, done, "ServeStream"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ServeStream = %v, want context.DeadlineExceeded", err)
	}
}

func TestServeStreamRefusesUnknownNameAndClosesConn(t *testing.T) {
	t.Parallel()
	client, done := startStream(t, t.Context(), "qotd", nil)
	if err := recv(t, done, "ServeStream"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("ServeStream = %v, want ErrUnknown", err)
	}
	if n, err := client.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("client read = %d, %v; want EOF", n, err)
	}
}

// isReset reports whether err is a connection reset, which a client may
// see instead of EOF when the server closes with data in flight.
func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && peerGone(err)
}
