package testproc

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
)

// FreePorts returns the first of n consecutive loopback ports that are free
// now, for a process that must be told its port before it starts (Trillian's
// servers, or a server restarted on the same address).
//
// The ports come from below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range), which the kernel never hands
// out for a ":0" listener or an outgoing connection. A port picked from
// inside that range can be taken by any other test's connection between
// the check here and the process binding it; below it, only another
// explicit pick can collide, and the random choice makes that rare.
func FreePorts(t testing.TB, n int) int {
	t.Helper()
	lo, hi := 10000, ephemeralLow()
	if hi-lo < n {
		t.Fatalf("testproc: no port range below the ephemeral range (%d)", hi)
	}
	for range 100 {
		base := lo + rand.IntN(hi-lo-n+1)
		ok := true
		for i := range n {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("testproc: no %d free consecutive ports in [%d, %d)", n, lo, hi)
	return 0
}

// ephemeralLow is the first port of the kernel's ephemeral range, or
// Linux's default 32768 when it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	var low, high int
	if _, err := fmt.Sscan(string(b), &low, &high); err != nil || low <= 10000 {
		return 32768
	}
	return low
}
