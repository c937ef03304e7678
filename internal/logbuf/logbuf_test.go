package logbuf

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// gate is an output whose writes block until released, recording each.
type gate struct {
	mu      sync.Mutex
	writes  [][]byte
	entered chan struct{}
	release chan struct{}
}

func (g *gate) Write(p []byte) (int, error) {
	g.entered <- struct{}{}
	<-g.release
	g.mu.Lock()
	g.writes = append(g.writes, bytes.Clone(p))
	g.mu.Unlock()
	return len(p), nil
}

// Records logged while a write is in progress leave together in the next
// one, in order, and Flush returns only when they are out.
func TestCoalescesWhileWriting(t *testing.T) {
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	w := New(g)
	if _, err := w.Write([]byte("a\n")); err != nil {
		t.Fatal(err)
	}
	<-g.entered // the flusher is inside the write of "a"
	for i := range 3 {
		fmt.Fprintf(w, "b%d\n", i)
	}
	flushed := make(chan error)
	go func() { flushed <- w.Flush() }()
	waitFor(t, w, 1)        // Flush is waiting
	g.release <- struct{}{} // "a" done
	<-g.entered             // the second write: everything logged meanwhile
	select {
	case <-flushed:
		t.Fatal("Flush returned before the records were written")
	default:
	}
	g.release <- struct{}{}
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if len(g.writes) != 2 || string(g.writes[0]) != "a\n" || string(g.writes[1]) != "b0\nb1\nb2\n" {
		t.Fatalf("writes = %q, want [a] then the three b records in one write", g.writes)
	}
	go func() {
		for range g.entered {
			g.release <- struct{}{}
		}
	}()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// After Close, writes go straight through.
	if _, err := w.Write([]byte("c\n")); err != nil {
		t.Fatal(err)
	}
	if got := string(g.writes[len(g.writes)-1]); got != "c\n" {
		t.Fatalf("last write = %q after Close", got)
	}
	close(g.entered)
}

// Concurrent writers lose nothing and keep each record whole; Close writes
// out the rest.
func TestConcurrentWritersAndClose(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	w := New(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(p)
	}))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				fmt.Fprintf(w, "g%d-%d %s\n", g, i, strings.Repeat("x", i%700))
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 8*2000 {
		t.Fatalf("%d lines, want %d", len(lines), 8*2000)
	}
	next := map[string]int{}
	for _, l := range lines {
		var g, i int
		var x string
		if _, err := fmt.Sscanf(l, "g%d-%d %s", &g, &i, &x); err != nil && i%700 != 0 {
			t.Fatalf("torn record %q: %v", l, err)
		}
		key := fmt.Sprint(g)
		if i != next[key] || len(x) != i%700 {
			t.Fatalf("record %q out of order or torn (want index %d)", l, next[key])
		}
		next[key]++
	}
}

// A writer more than Max ahead of a stalled output waits instead of
// growing the buffer without bound.
func TestBackpressure(t *testing.T) {
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	w := New(g)
	rec := bytes.Repeat([]byte("x"), 1024)
	w.Write(rec)
	<-g.entered // the output is stalled inside the first write
	for range Max / len(rec) {
		w.Write(rec)
	}
	blocked := make(chan struct{})
	go func() {
		w.Write(rec) // over Max: must wait
		close(blocked)
	}()
	waitFor(t, w, 1)
	select {
	case <-blocked:
		t.Fatal("Write returned with the buffer over Max and the output stalled")
	default:
	}
	g.release <- struct{}{} // first write done; the flusher takes the buffer
	<-g.entered
	<-blocked // room again
	go func() {
		for range g.entered {
			g.release <- struct{}{}
		}
	}()
	g.release <- struct{}{}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	close(g.entered)
}

// The output's error is returned by later writes and by Flush.
func TestOutputError(t *testing.T) {
	boom := errors.New("disk full")
	w := New(writerFunc(func(p []byte) (int, error) { return 0, boom }))
	w.Write([]byte("a\n"))
	if err := w.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush = %v, want %v", err, boom)
	}
	if _, err := w.Write([]byte("b\n")); !errors.Is(err, boom) {
		t.Fatalf("Write = %v, want %v", err, boom)
	}
	w.Close()
}

// waitFor polls (with a deadline) until n callers wait inside w.
func waitFor(t *testing.T, w *Writer, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.mu.Lock()
		got := w.waiting
		w.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers waiting, want %d", got, n)
		}
		runtime.Gosched()
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
