package splice

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/internal/tcptest"
)

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// TestCopyMovesExactlyN: n bytes arrive whole, and what follows them on the source is
// still there to read.
func TestCopyMovesExactlyN(t *testing.T) {
	for _, n := range []int{1, 1000, 64 << 10, 3<<20 + 17} {
		srcW, src := tcptest.Pair(t)
		dst, dstR := tcptest.Pair(t)
		data := pattern(n)
		go func() { srcW.Write(append(append([]byte(nil), data...), "NEXT"...)) }()
		got := make(chan []byte, 1)
		go func() {
			b := make([]byte, n)
			_, err := io.ReadFull(dstR, b)
			if err != nil {
				b = nil
			}
			got <- b
		}()
		p := New()
		taken, err := p.Copy(dst, src, int64(n))
		if err != nil || taken != int64(n) {
			t.Fatalf("n=%d: Copy = %d, %v", n, taken, err)
		}
		if b := <-got; !bytes.Equal(b, data) {
			t.Fatalf("n=%d: destination got different bytes", n)
		}
		next := make([]byte, 4)
		src.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(src, next); err != nil || string(next) != "NEXT" {
			t.Fatalf("n=%d: source position lost: %q %v", n, next, err)
		}
		p.Close()
	}
}

// TestCopyDestinationGoneKeepsSourcePosition: when the destination fails midway, Copy
// says so and how much it took, and the source can be read on from exactly there.
func TestCopyDestinationGoneKeepsSourcePosition(t *testing.T) {
	const n = 8 << 20
	srcW, src := tcptest.Pair(t)
	dst, dstR := tcptest.Pair(t)
	data := append(pattern(n), "NEXT"...)
	go srcW.Write(data)
	// The reader takes a little, then resets the connection.
	go func() {
		io.ReadFull(dstR, make([]byte, 100<<10))
		dstR.(*net.TCPConn).SetLinger(0)
		dstR.Close()
	}()
	p := New()
	defer p.Close()
	dst.SetWriteDeadline(time.Now().Add(10 * time.Second))
	taken, err := p.Copy(dst, src, n)
	if err == nil || !IsDst(err) {
		t.Fatalf("Copy = %d, %v; want a destination error", taken, err)
	}
	if taken <= 0 || taken >= n {
		t.Fatalf("taken = %d, want between 0 and %d", taken, n)
	}
	// The rest of the message, then what follows it, are still on the source in order.
	rest := make([]byte, n-taken+4)
	src.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(src, rest); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rest, data[taken:]) {
		t.Fatal("source position after the failure is not where Copy said")
	}
	// The pipe was dropped with its stale bytes: the next Copy starts clean.
	srcW2, src2 := tcptest.Pair(t)
	dst2, dstR2 := tcptest.Pair(t)
	go srcW2.Write([]byte("hello"))
	if taken, err := p.Copy(dst2, src2, 5); err != nil || taken != 5 {
		t.Fatalf("Copy after failure = %d, %v", taken, err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(dstR2, got); err != nil || string(got) != "hello" {
		t.Fatalf("after failure: %q %v", got, err)
	}
}

// TestCopySourceEndsEarly: a source that ends before n is io.ErrUnexpectedEOF on the
// source's side.
func TestCopySourceEndsEarly(t *testing.T) {
	srcW, src := tcptest.Pair(t)
	dst, _ := tcptest.Pair(t)
	srcW.Write([]byte("short"))
	srcW.Close()
	taken, err := New().Copy(dst, src, 100)
	if taken != 5 || IsDst(err) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Copy = %d, %v", taken, err)
	}
}

// TestCopyDeadline: a source deadline ends a Copy that waits.
func TestCopyDeadline(t *testing.T) {
	_, src := tcptest.Pair(t)
	dst, _ := tcptest.Pair(t)
	src.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := New().Copy(dst, src, 10)
	var ne net.Error
	if IsDst(err) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Copy = %v, want a source timeout", err)
	}
}

// failWriter accepts limit bytes, then fails.
type failWriter struct {
	limit int
	got   bytes.Buffer
}

func (w *failWriter) Write(b []byte) (int, error) {
	if w.got.Len()+len(b) > w.limit {
		return 0, errors.New("full")
	}
	return w.got.Write(b)
}

// TestCopyBuffered: without sockets the copy goes through a buffer, counting the same way.
func TestCopyBuffered(t *testing.T) {
	data := pattern(200 << 10)
	src := bytes.NewReader(append(append([]byte(nil), data...), "NEXT"...))
	var dst bytes.Buffer
	taken, err := New().Copy(&dst, src, int64(len(data)))
	if err != nil || taken != int64(len(data)) || !bytes.Equal(dst.Bytes(), data) {
		t.Fatalf("Copy = %d, %v", taken, err)
	}
	src = bytes.NewReader(data)
	fw := &failWriter{limit: 100 << 10}
	taken, err = New().Copy(fw, src, int64(len(data)))
	if !IsDst(err) || taken != int64(len(data))-int64(src.Len()) {
		t.Fatalf("Copy = %d, %v; source left %d", taken, err, src.Len())
	}
}

// TestCopyAllocations: copies between the same connections allocate nothing.
func TestCopyAllocations(t *testing.T) {
	srcW, src := tcptest.Pair(t)
	dst, dstR := tcptest.Pair(t)
	const n = 256 << 10
	data := pattern(n)
	go func() {
		for {
			if _, err := srcW.Write(data); err != nil {
				return
			}
		}
	}()
	go io.Copy(io.Discard, dstR)
	p := New()
	defer p.Close()
	p.Copy(dst, src, n) // makes the pipe, learns the connections
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := p.Copy(dst, src, n); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Copy", allocs)
	}
}
