package console

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verifyd/verifyd"
)

func TestSender_FileContractAndReconcile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "out.jsonl")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := &verifyd.Message{ID: "m1", VerificationID: "v1", Channel: verifyd.Flashcall, To: "+447400123456",
		Text: "flash call", Code: "1234", CallerID: "+15551231234"}
	if _, err := s.Send(ctx, m); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("console file mode %v, want 0600 (it holds codes)", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	var line map[string]any
	if err := json.Unmarshal(b, &line); err != nil {
		t.Fatalf("not one JSON object per line: %q", b)
	}
	for k, want := range map[string]string{"channel": "flashcall", "to": "+447400123456", "text": "flash call",
		"code": "1234", "verification_id": "v1", "message_id": "m1", "caller_id": "+15551231234"} {
		if line[k] != want {
			t.Fatalf("%s = %v, want %q", k, line[k], want)
		}
	}
	if ok, _ := s.Sent(ctx, "m1"); !ok {
		t.Fatal("Sent(m1) = false after sending it")
	}
	if ok, _ := s.Sent(ctx, "m2"); ok {
		t.Fatal("Sent(m2) = true for a message never sent")
	}
	// Another process appends to the shared file, the last line still partial.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"message_id":"m2","verification_id":"v2"}` + "\n" + `{"message_id":"m3"`)
	if ok, _ := s.Sent(ctx, "m2"); !ok {
		t.Fatal("Sent(m2) = false after another writer appended it")
	}
	if ok, _ := s.Sent(ctx, "m3"); ok {
		t.Fatal("a partial line counted as sent")
	}
	f.WriteString(`,"verification_id":"v3"}` + "\n" + strings.Repeat("x", 300<<10) + "\n" + `{"message_id":"m4"}` + "\n")
	f.Close()
	for _, id := range []string{"m3", "m4"} {
		if ok, _ := s.Sent(ctx, id); !ok {
			t.Fatalf("Sent(%s) = false once its line was complete", id)
		}
	}
}
