package tcp

import (
	"io"
	"net"
	"sync"
	"testing"
)

// BenchmarkNewConn measures whole connections through a Service: connect,
// write 64 bytes, read the echo, close — from 8 clients at once.
func BenchmarkNewConn(b *testing.B) {
	f := serveB(b, echoBackendB(b))
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N/8 + 1
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for i := 0; i < per; i++ {
				c, err := net.Dial("tcp", f)
				if err != nil {
					b.Error(err)
					return
				}
				c.Write(buf)
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Error(err)
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
}
