package sip

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestJournal(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	j, err := openJournal(dir, 24*time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(j.record(stateBegun, "crashed", "c1"))
	must(j.record(stateBegun, "rang", "c2"))
	must(j.record(stateReached, "rang", "c2"))
	must(j.record(stateBegun, "refused", "c3"))
	must(j.record(stateUnreached, "refused", "c3"))
	if err := j.record(stateBegun, "has space", "c4"); err == nil {
		t.Fatal("an id with a space was journaled")
	}
	must(j.close())

	// A torn last line, as a crash mid-write leaves it.
	path := filepath.Join(dir, journalFile)
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("1768046400000 begin torn")
	f.Close()

	t.Run("Reopen", func(t *testing.T) {
		j, err := openJournal(dir, 24*time.Hour, clock)
		if err != nil {
			t.Fatal(err)
		}
		defer j.close()
		for id, want := range map[string]bool{"crashed": true, "rang": true, "refused": false, "torn": false, "never": false} {
			if got := j.placed(id); got != want {
				t.Errorf("placed(%s) = %v, want %v", id, got, want)
			}
		}
		if e, _ := j.lookup("rang"); e.callID != "c2" {
			t.Errorf("call id %q", e.callID)
		}
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), "torn") {
			t.Error("torn line kept")
		}
	})

	t.Run("Retention", func(t *testing.T) {
		later := func() time.Time { return now.Add(25 * time.Hour) }
		j, err := openJournal(dir, 24*time.Hour, later)
		if err != nil {
			t.Fatal(err)
		}
		defer j.close()
		if j.placed("crashed") {
			t.Error("record older than the retention kept")
		}
		if b, _ := os.ReadFile(path); len(b) != 0 {
			t.Errorf("journal not compacted: %q", b)
		}
	})
}

// A sender restarted on the same journal reports a call begun before the
// restart as sent, and does not place it again.
func TestSender_SentAcrossRestart(t *testing.T) {
	cfg := testConfig(t, freeUDPPort(t))
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.journal.record(stateBegun, "job-crash", "abc"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openSender(t, cfg)
	if ok, err := s2.Sent(context.Background(), "job-crash"); !ok || err != nil {
		t.Fatalf("Sent = %v, %v after restart", ok, err)
	}
	res, err := s2.Send(context.Background(), voiceMessage("job-crash"))
	if err != nil || res.ProviderMessageID != "abc" {
		t.Fatalf("Send = %+v, %v; want the earlier call, not a new one", res, err)
	}
}
