// Package console is the development sender: it writes every message as one
// JSON object per line to a file or standard output and never leaves the
// machine. Tests and users' CI read that output (the console contract):
// channel, to, text, code, verification_id, message_id, and caller_id for
// flash calls.
package console

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/verifyd/verifyd"
)

// Sender writes messages as JSON lines. With a file it also implements
// verifyd.Reconciler, so a message written just before a crash is not
// written again after the restart.
type Sender struct {
	mu   sync.Mutex
	w    io.Writer
	path string // "" for a plain writer
	f    *os.File
	now  func() time.Time
	// seen holds the message ids of the file's lines up to offset read
	// (filled lazily by Sent, for recovery only).
	seen map[string]struct{}
	read int64
}

// line is the console contract.
type line struct {
	Time           string          `json:"time"`
	Channel        verifyd.Channel `json:"channel"`
	To             string          `json:"to"`
	Text           string          `json:"text"`
	Code           string          `json:"code"`
	CallerID       string          `json:"caller_id,omitempty"`
	Extension      string          `json:"extension,omitempty"`
	Language       string          `json:"language"`
	VerificationID string          `json:"verification_id"`
	MessageID      string          `json:"message_id"`
	ProfileID      string          `json:"profile_id"`
}

// New returns a sender writing to w.
func New(w io.Writer) *Sender { return &Sender{w: w, now: time.Now} }

// Open returns a sender appending to the file at path (created 0600: it
// holds codes).
func Open(path string) (*Sender, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return &Sender{w: f, f: f, path: path, now: time.Now}, nil
}

// Close closes the file, if any.
func (s *Sender) Close() error {
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}

// Send writes one line in a single write call.
func (s *Sender) Send(_ context.Context, m *verifyd.Message) (*verifyd.SendResult, error) {
	b, err := json.Marshal(line{
		Time: verifyd.FormatEventTime(s.now()), Channel: m.Channel, To: m.To, Text: m.Text, Code: m.Code,
		CallerID: m.CallerID, Extension: m.Extension, Language: m.Language,
		VerificationID: m.VerificationID, MessageID: m.ID, ProfileID: m.ProfileID,
	})
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	s.mu.Lock()
	_, err = s.w.Write(b)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &verifyd.SendResult{Sender: "console", ProviderMessageID: m.ID, Parts: 1, Status: verifyd.DeliverySent}, nil
}

// Sent reports whether a line for message id is already in the file (written
// by this process or, with a shared file, another one). The first call reads
// the whole file into a set of message ids; later calls read only what was
// appended since, so reconciling many in-doubt jobs stays cheap. Without a
// file it answers false (a crash may then repeat a line).
func (s *Sender) Sent(_ context.Context, id string) (bool, error) {
	if s.path == "" {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.catchUp(); err != nil {
		return false, err
	}
	_, ok := s.seen[id]
	return ok, nil
}

// catchUp adds the message ids of lines appended to the file since the last
// call to s.seen. A partial last line is left for the next call.
func (s *Sender) catchUp() error {
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(s.read, io.SeekStart); err != nil {
		return err
	}
	if s.seen == nil {
		s.seen = make(map[string]struct{})
	}
	r := bufio.NewReaderSize(f, 256<<10)
	key := []byte(`"message_id":"`)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// An over-long line: skip to its end; it holds no id we wrote.
			n := int64(len(line))
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.ReadSlice('\n')
				n += int64(len(line))
			}
			if err == nil {
				s.read += n
			}
			continue
		}
		if err != nil { // io.EOF: a partial line stays for next time
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		s.read += int64(len(line))
		if i := bytes.Index(line, key); i >= 0 {
			rest := line[i+len(key):]
			if j := bytes.IndexByte(rest, '"'); j > 0 {
				s.seen[string(rest[:j])] = struct{}{}
			}
		}
	}
}

// IsStdout reports whether path names standard output.
func IsStdout(path string) bool {
	return path == "" || path == "-" || strings.EqualFold(path, "stdout")
}
