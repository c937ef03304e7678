// Package logbuf is an io.Writer for a server's log stream that takes the
// write system call off the logging goroutine: records are appended to a
// buffer that one goroutine writes out as soon as it can, so records
// logged while a write is in progress leave together in the next one.
//
// Nothing waits for a timer: an idle server's record is written at once;
// under load, one write carries many records (the per-request access log
// costs a copy instead of a system call). Nothing is dropped: a writer that
// gets more than Max bytes ahead of the output waits for it. What is lost
// to a SIGKILL is at most the records of the write in progress.
package logbuf

import (
	"io"
	"sync"
)

// Max is how far (bytes) the buffer may get ahead of the output before
// Write waits.
const Max = 1 << 20

// Writer buffers writes to an io.Writer; see the package comment. Close
// (or Flush) before the process exits.
type Writer struct {
	out io.Writer

	mu      sync.Mutex
	cond    sync.Cond // signalled when buf is taken or written out
	buf     []byte    // records not yet taken by the flusher
	spare   []byte    // the flusher's last buffer, for reuse
	writing bool      // the flusher holds a taken buffer it has not written yet
	closed  bool
	err     error // the output's first error, returned by later writes
	waiting int   // callers in cond.Wait (Write over Max, Flush): for tests

	wake chan struct{}
	done chan struct{}
}

// New starts a Writer on out.
func New(out io.Writer) *Writer {
	w := &Writer{out: out, wake: make(chan struct{}, 1), done: make(chan struct{})}
	w.cond.L = &w.mu
	go w.run()
	return w
}

// Write copies p into the buffer (p may be reused once it returns).
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	for !w.closed && len(w.buf) > 0 && len(w.buf)+len(p) > Max {
		w.wait()
	}
	if w.closed {
		// After Close: synchronously, once the flusher has written the rest.
		w.mu.Unlock()
		<-w.done
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.out.Write(p)
	}
	err := w.err
	w.buf = append(w.buf, p...)
	w.poke()
	w.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush returns once everything written before it is out.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for (len(w.buf) > 0 || w.writing) && !w.closed {
		w.poke()
		w.wait()
	}
	return w.err
}

func (w *Writer) wait() {
	w.waiting++
	w.cond.Wait()
	w.waiting--
}

// poke wakes the flusher (w.mu held, so never after Close closed wake).
func (w *Writer) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Close writes out what is buffered and stops the flusher; later writes go
// straight to the output.
func (w *Writer) Close() error {
	err := w.Flush()
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.wake) // the flusher writes out what is left, then stops
	}
	w.cond.Broadcast()
	w.mu.Unlock()
	<-w.done
	return err
}

func (w *Writer) run() {
	defer close(w.done)
	for range w.wake {
		for {
			w.mu.Lock()
			if len(w.buf) == 0 {
				w.mu.Unlock()
				break
			}
			b := w.buf
			w.buf, w.spare = w.spare[:0], nil
			w.writing = true
			w.cond.Broadcast() // room for blocked writers
			w.mu.Unlock()

			_, err := w.out.Write(b)

			w.mu.Lock()
			if err != nil && w.err == nil {
				w.err = err
			}
			if cap(b) <= Max {
				w.spare = b[:0]
			}
			w.writing = false
			w.cond.Broadcast() // Flush waiters
			w.mu.Unlock()
		}
	}
}
