package builtin

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

type relayResult struct {
	sent, received int64
	err            error
}

// startRelay accepts one client connection on a loopback front listener and
// relays it to target with Relay(ctx, …). It returns the client's end and
// where Relay's result arrives.
func startRelay(t *testing.T, ctx context.Context, target string) (*net.TCPConn, <-chan relayResult) {
	t.Helper()
	front := listenTCP(t)
	accepted := acceptOne(t, front)
	client := dialTCP(t, front.Addr())
	conn := recv(t, accepted, "front accept")
	done := make(chan relayResult, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var r relayResult
		r.sent, r.received, r.err = Relay(ctx, conn, target, 5*time.Second)
		done <- r
	}()
	t.Cleanup(func() {
		client.Close()
		waitClosed(t, finished, "Relay to end at cleanup")
	})
	return client, done
}

// backend is a loopback listener standing for the redirect target; its
// accepted connection arrives on the returned channel with a deadline.
func backend(t *testing.T) (string, <-chan *net.TCPConn) {
	t.Helper()
	ln := listenTCP(t)
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			close(accepted)
			return
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(testTimeout))
		accepted <- c
	}()
	return ln.Addr().String(), accepted
}

func TestRelayCarriesBytesBothWays(t *testing.T) {
	t.Parallel()
	target, accepted := backend(t)
	client, done := startRelay(t, t.Context(), target)
	be := recv(t, accepted, "backend accept")

	cr, br := bufio.NewReader(client), bufio.NewReader(be)
	for i := range 20 {
		if _, err := client.Write([]byte("ping\n")); err != nil {
			t.Fatalf("client write %d: %v", i, err)
		}
		if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
			t.Fatalf("backend got %q, %v", line, err)
		}
		if _, err := be.Write([]byte("pong!\n")); err != nil {
			t.Fatalf("backend write %d: %v", i, err)
		}
		if line, err := cr.ReadString('\n'); err != nil || line != "pong!\n" {
			t.Fatalf("client got %q, %v", line, err)
		}
	}
	client.Close()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("backend after client close: %v, want EOF", err)
	}
	be.Close()
	r := recv(t, done, "Relay")
	if r.err != nil || r.sent != 20*5 || r.received != 20*6 {
		t.Fatalf("Relay = %d, %d, %v; want 100, 120, nil", r.sent, r.received, r.err)
	}
}

func TestRelayClientHalfCloseStillReceivesTheTail(t *testing.T) {
	t.Parallel()
	target, accepted := backend(t)
	client, done := startRelay(t, t.Context(), target)
	be := recv(t, accepted, "backend accept")

	if _, err := client.Write([]byte("request")); err != nil {
		t.Fatalf("client write: %v", err)
	}
	if err := client.CloseWrite(); err != nil {
		t.Fatalf("client CloseWrite: %v", err)
	}
	// The backend sees the client's EOF: the half-close was passed on.
	req, err := io.ReadAll(be)
	if err != nil || string(req) != "request" {
		t.Fatalf("backend read %q, %v", req, err)
	}
	// Only then does it answer, and the client still gets the answer.
	if _, err := be.Write([]byte("tail after EOF")); err != nil {
		t.Fatalf("backend write: %v", err)
	}
	be.Close()
	tail, err := io.ReadAll(client)
	if err != nil || string(tail) != "tail after EOF" {
		t.Fatalf("client read %q, %v", tail, err)
	}
	r := recv(t, done, "Relay")
	if r.err != nil || r.sent != 7 || r.received != 14 {
		t.Fatalf("Relay = %d, %d, %v; want 7, 14, nil", r.sent, r.received, r.err)
	}
}

func TestRelayBackendClosingFirstReachesTheClient(t *testing.T) {
	t.Parallel()
	target, accepted := backend(t)
	client, done := startRelay(t, t.Context(), target)
	be := recv(t, accepted, "backend accept")

	if _, err := be.Write([]byte("banner")); err != nil {
		t.Fatalf("backend write: %v", err)
	}
	be.Close()
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "banner" {
		t.Fatalf("client read %q, %v; want the banner then EOF", got, err)
	}
	client.Close()
	r := recv(t, done, "Relay")
	if r.err != nil || r.sent != 0 || r.received != 6 {
		t.Fatalf("Relay = %d, %d, %v; want 0, 6, nil", r.sent, r.received, r.err)
	}
}

func TestRelayBackendHalfCloseLeavesClientSending(t *testing.T) {
	t.Parallel()
	target, accepted := backend(t)
	client, done := startRelay(t, t.Context(), target)
	be := recv(t, accepted, "backend accept")

	if _, err := be.Write([]byte("go ahead")); err != nil {
		t.Fatalf("backend write: %v", err)
	}
	be.CloseWrite()
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "go ahead" {
		t.Fatalf("client read %q, %v", got, err)
	}
	if _, err := client.Write([]byte("upload")); err != nil {
		t.Fatalf("client write after backend EOF: %v", err)
	}
	client.CloseWrite()
	up, err := io.ReadAll(be)
	if err != nil || string(up) != "upload" {
		t.Fatalf("backend read %q, %v", up, err)
	}
	r := recv(t, done, "Relay")
	if r.err != nil || r.sent != 6 || r.received != 8 {
		t.Fatalf("Relay = %d, %d, %v; want 6, 8, nil", r.sent, r.received, r.err)
	}
}

// sendRandom writes n bytes of a seeded random stream to w in chunks,
// closes w's sending side, and returns the SHA-256 of what it wrote.
func sendRandom(w *net.TCPConn, seed byte, n int) ([32]byte, error) {
	src := rand.NewChaCha8([32]byte{seed})
	h := sha256.New()
	chunk := make([]byte, 64<<10)
	for left := n; left > 0; left -= len(chunk) {
		chunk = chunk[:min(left, len(chunk))]
		src.Read(chunk)
		h.Write(chunk)
		if _, err := w.Write(chunk); err != nil {
			return [32]byte{}, err
		}
	}
	return [32]byte(h.Sum(nil)), w.CloseWrite()
}

// hashAll reads r to EOF and returns how much it read and its SHA-256.
func hashAll(r io.Reader) (int64, [32]byte, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return n, [32]byte(h.Sum(nil)), err
}

func TestRelayLargeTransferBothWaysIntact(t *testing.T) {
	t.Parallel()
	const size = 32 << 20
	target, accepted := backend(t)
	client, done := startRelay(t, t.Context(), target)
	be := recv(t, accepted, "backend accept")

	type sendResult struct {
		sum [32]byte
		err error
	}
	clientSent := make(chan sendResult, 1)
	backendSent := make(chan sendResult, 1)
	go func() { s, err := sendRandom(client, 1, size); clientSent <- sendResult{s, err} }()
	go func() { s, err := sendRandom(be, 2, size); backendSent <- sendResult{s, err} }()

	type readResult struct {
		n   int64
		sum [32]byte
		err error
	}
	backendRead := make(chan readResult, 1)
	go func() { n, s, err := hashAll(be); backendRead <- readResult{n, s, err} }()
	n, clientSum, err := hashAll(client)
	if err != nil || n != size {
		t.Fatalf("client read %d bytes, %v; want %d", n, err, size)
	}

	up, down := recv(t, clientSent, "client send"), recv(t, backendSent, "backend send")
	if up.err != nil || down.err != nil {
		t.Fatalf("send errors: client %v, backend %v", up.err, down.err)
	}
	br := recv(t, backendRead, "backend read")
	if br.err != nil || br.n != size {
		t.Fatalf("backend read %d bytes, %v; want %d", br.n, br.err, size)
	}
	if br.sum != up.sum {
		t.Error("client to backend: SHA-256 differs")
	}
	if clientSum != down.sum {
		t.Error("backend to client: SHA-256 differs")
	}
	r := recv(t, done, "Relay")
	if r.err != nil || r.sent != size || r.received != size {
		t.Fatalf("Relay = %d, %d, %v; want %d both ways", r.sent, r.received, r.err, size)
	}
}

func TestRelayDialFailureReturnsAtOnceAndClosesClient(t *testing.T) {
	t.Parallel()
	// A port that was just free and is closed again: the dial is refused.
	ln := listenTCP(t)
	target := ln.Addr().String()
	ln.Close()

	start := time.Now()
	client, done := startRelay(t, t.Context(), target)
	r := recv(t, done, "Relay")
	if r.err == nil {
		t.Fatal("Relay to a closed port succeeded")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the refused dial took %v", took)
	}
	if r.sent != 0 || r.received != 0 {
		t.Errorf("counted %d, %d bytes without a target", r.sent, r.received)
	}
	if n, err := client.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("client read = %d, %v; want EOF", n, err)
	}
}

func TestRelayEndsWhenContextIsCancelled(t *testing.T) {
	t.Parallel()
	target, accepted := backend(t)
	ctx, cancel := context.WithCancel(t.Context())
	client, done := startRelay(t, ctx, target)
	be := recv(t, accepted, "backend accept")

	// Bytes in flight one way, then both sides idle.
	if _, err := client.Write([]byte("hi")); err != nil {
		t.Fatalf("client write: %v", err)
	}
	if _, err := io.ReadFull(be, make([]byte, 2)); err != nil {
		t.Fatalf("backend read: %v", err)
	}
	cancel()
	r := recv(t, done, "Relay")
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Relay = %v, want context.Canceled", r.err)
	}
	if r.sent != 2 {
		t.Errorf("sent = %d, want 2", r.sent)
	}
	for name, c := range map[string]*net.TCPConn{"client": client, "backend": be} {
		if _, err := io.Copy(io.Discard, c); err != nil && !isReset(err) {
			t.Errorf("%s after cancel: %v, want EOF", name, err)
		}
	}
}
