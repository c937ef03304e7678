package netprobe

import (
	"net"
	"testing"
)

func TestUDPBound(t *testing.T) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	if bound, ok := UDPBound(port); !ok {
		t.Skip("/proc/net/udp not readable")
	} else if !bound {
		t.Fatalf("port %d bound but not seen", port)
	}
	c.Close()
	if bound, _ := UDPBound(port); bound {
		t.Fatalf("port %d closed but seen bound", port)
	}
}
