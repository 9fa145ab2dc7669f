package testport

import (
	"net"
	"strconv"
	"testing"
)

func TestFreeGivesDistinctPortsBelowTheEphemeralRangeThatCanBeBound(t *testing.T) {
	seen := map[int]bool{}
	for i := 0; i < 50; i++ {
		p := Free(t)
		if seen[p] {
			t.Fatalf("port %d given twice", p)
		}
		seen[p] = true
		if ephemeralLow() > last && (p < first || p > last) {
			t.Fatalf("port %d outside %d–%d", p, first, last)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d over TCP: %v", p, err)
		}
		l.Close()
		c, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d over UDP: %v", p, err)
		}
		c.Close()
	}
}
