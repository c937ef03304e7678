package sip

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Call states recorded in the journal.
const (
	// stateBegun: an INVITE may have left; nothing more is known (a crash
	// mid-call leaves this). Counts as placed.
	stateBegun = "begin"
	// stateReached: the callee's phone rang or answered. Counts as placed.
	stateReached = "reached"
	// stateUnreached: the call surely never reached the callee (trunk
	// unreachable, 5xx, auth failure): it may be placed again.
	stateUnreached = "unreached"
)

// journal is an append-only file of call records, one line each:
//
//	<unix ms> <state> <message id> <call id>
//
// A begin record is written and fsynced before every INVITE; an end record
// (reached or unreached) after the call. The last record of a message id is
// its state. A torn last line (crash mid-write) is ignored. Records older than
// the retention are dropped when the journal opens.
type journal struct {
	mu    sync.Mutex
	f     *os.File
	calls map[string]journalEntry
	now   func() time.Time
}

type journalEntry struct {
	state  string
	callID string
}

const journalFile = "journal.log"

// openJournal reads dir/journal.log, rewrites it without records older than
// retention, and opens it for appending.
func openJournal(dir string, retention time.Duration, now func() time.Time) (*journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, journalFile)
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	j := &journal{calls: map[string]journalEntry{}, now: now}
	cutoff := now().Add(-retention).UnixMilli()
	var keep bytes.Buffer
	dropped := false
	for line := range bytes.Lines(b) {
		if !bytes.HasSuffix(line, []byte("\n")) {
			dropped = true // torn write
			break
		}
		f := strings.Fields(string(line))
		if len(f) != 4 {
			dropped = true
			continue
		}
		ms, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || ms < cutoff {
			dropped = true
			continue
		}
		j.calls[f[2]] = journalEntry{state: f[1], callID: f[3]}
		keep.Write(line)
	}
	if dropped {
		if err := rewrite(path, keep.Bytes()); err != nil {
			return nil, fmt.Errorf("compact call journal: %w", err)
		}
	}
	j.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return j, nil
}

// rewrite replaces path with b atomically (temp file, fsync, rename, fsync
// of the directory).
func rewrite(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// record appends one record and fsyncs it.
func (j *journal) record(state, id, callID string) error {
	if strings.ContainsAny(id, " \t\r\n") || id == "" {
		return fmt.Errorf("message id %q cannot be journaled", id)
	}
	if callID == "" {
		callID = "-"
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	line := fmt.Sprintf("%d %s %s %s\n", j.now().UnixMilli(), state, id, callID)
	if _, err := j.f.WriteString(line); err != nil {
		return err
	}
	if err := j.f.Sync(); err != nil {
		return err
	}
	j.calls[id] = journalEntry{state: state, callID: callID}
	return nil
}

// lookup returns the last record of id.
func (j *journal) lookup(id string) (journalEntry, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.calls[id]
	return e, ok
}

// placed reports whether a call for id may have reached the callee.
func (j *journal) placed(id string) bool {
	e, ok := j.lookup(id)
	return ok && e.state != stateUnreached
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.f.Close()
}
