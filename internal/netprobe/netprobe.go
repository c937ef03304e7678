// Package netprobe tells tests whether a peer process has bound a local
// UDP port without binding it themselves: a probe that binds the port to
// see whether that fails can take it from the peer at the very moment the
// peer binds it (the peer then fails with "address already in use").
package netprobe

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// UDPBound reports whether a UDP socket is bound to 127.0.0.1:port, from
// /proc/net/udp (Linux). ok is false when that file cannot be read.
func UDPBound(port int) (bound, ok bool) {
	f, err := os.Open("/proc/net/udp")
	if err != nil {
		return false, false
	}
	defer f.Close()
	// local_address is the second field: hex IPv4 in host byte order
	// (127.0.0.1 = 0100007F on little-endian machines) and hex port.
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || !strings.HasSuffix(fields[1], want) {
			continue
		}
		if ip := strings.TrimSuffix(fields[1], want); ip == "0100007F" || ip == "7F000001" || ip == "00000000" {
			return true, true
		}
	}
	return false, sc.Err() == nil
}
