package logjson

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// randomRecord makes a record of the shapes the fast path takes and of
// those it must leave to the JSONHandler.
func randomRecord(r *rand.Rand) slog.Record {
	zones := []*time.Location{time.UTC, time.FixedZone("x", 5*3600+1800), time.FixedZone("y", -8*3600)}
	times := []time.Time{
		time.Date(2026, 12, 8, 0, 19, 28, 936952465, zones[r.IntN(3)]),
		time.Date(2026, 12, 8, 0, 19, 28, 0, zones[r.IntN(3)]),
		time.Date(2026, 1, 2, 3, 4, 5, 100000000, zones[r.IntN(3)]),
		time.Now(),
		time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC), // out of RFC 3339's range
	}
	texts := []string{"", "http request", "POST", "/v2/verifications/sms", "58dd9e258d49-1gjk",
		"70e04eac-4b3d-4349-ace8-5a2c2088fc2e", `quote"d`, `back\slash`, "tab\there", "line\nbreak",
		"ünïcode", "<html>&amp;", "\u2028", "\x7f", "ok:._-~!#$%&'()*+,/;=?@[]^`{|}"}
	text := func() string { return texts[r.IntN(len(texts))] }
	floats := []float64{0, math.Copysign(0, -1), 0.009, 1.5, 123.456, 1e-6, 9.99e-7, 1e20, 1e21, 1e-7,
		-2.25, math.NaN(), math.Inf(1), math.Inf(-1), 1234567.125}
	levels := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError, slog.LevelInfo + 2}
	rec := slog.NewRecord(times[r.IntN(len(times))], levels[r.IntN(len(levels))], text(), 0)
	for n := r.IntN(8); n > 0; n-- {
		key := text()
		var a slog.Attr
		switch r.IntN(10) {
		case 0:
			a = slog.Int(key, r.IntN(1000)-500)
		case 1:
			a = slog.Uint64(key, r.Uint64())
		case 2:
			a = slog.Bool(key, r.IntN(2) == 0)
		case 3:
			a = slog.Duration(key, time.Duration(r.Int64N(1e12)))
		case 4:
			a = slog.Float64(key, floats[r.IntN(len(floats))])
		case 5:
			a = slog.Time(key, times[r.IntN(len(times)-1)])
		case 6:
			a = slog.Group(key, slog.String("in", text()))
		case 7:
			a = slog.Any(key, []int{1, 2})
		case 8:
			a = slog.Attr{}
		default:
			a = slog.String(key, text())
		}
		rec.AddAttrs(a)
	}
	return rec
}

func TestSameBytesAsJSONHandler(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, opts := range []*slog.HandlerOptions{nil, {Level: slog.LevelDebug},
		{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return a }}} {
		var got, want bytes.Buffer
		fast, std := New(&got, opts), slog.NewJSONHandler(&want, opts)
		for range 20000 {
			rec := randomRecord(r)
			got.Reset()
			want.Reset()
			errFast, errStd := fast.Handle(context.Background(), rec), std.Handle(context.Background(), rec)
			if got.String() != want.String() || (errFast == nil) != (errStd == nil) {
				t.Fatalf("record %v:\nfast %q (%v)\nstd  %q (%v)", rec, got.String(), errFast, want.String(), errStd)
			}
		}
		for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn} {
			if fast.Enabled(context.Background(), l) != std.Enabled(context.Background(), l) {
				t.Fatalf("Enabled(%v) differs", l)
			}
		}
	}
}

// The access log line takes the fast path (a change that sent it down the
// general one would only show in a profile).
func TestAccessLineIsFast(t *testing.T) {
	rec := accessRecord()
	if !fastPath(rec) {
		t.Fatal("the access log record takes the general path")
	}
}

func fastPath(r slog.Record) bool {
	ok := plain(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		_, ok = appendAttr(nil, a)
		return ok
	})
	return ok
}

func accessRecord() slog.Record {
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, "http request", 0)
	rec.AddAttrs(slog.String("method", "POST"), slog.String("route", "/v2/verifications/sms"),
		slog.Int("status", 200), slog.Float64("duration_ms", float64((1234*time.Microsecond).Microseconds())/1000),
		slog.String("request_id", "58dd9e258d49-1gjk"), slog.String("account_id", "70e04eac-4b3d-4349-ace8-5a2c2088fc2e"))
	return rec
}

// Lines written concurrently by both paths are whole.
func TestConcurrentLinesWhole(t *testing.T) {
	var out bytes.Buffer
	h := New(&out, nil)
	l := slog.New(h)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if g%2 == 0 {
					l.Info("fast", "i", i)
				} else {
					l.With("g", g).Info("general \"path\"", "i", i)
				}
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines, want 1600", len(lines))
	}
	for _, line := range lines {
		if !strings.HasPrefix(line, `{"time":"`) || !strings.HasSuffix(line, "}") || strings.Count(line, `{"time"`) != 1 {
			t.Fatalf("torn line %q", line)
		}
	}
}

func BenchmarkAccessLine(b *testing.B) {
	var out discard
	for _, c := range []struct {
		name string
		h    slog.Handler
	}{{"JSONHandler", slog.NewJSONHandler(&out, nil)}, {"logjson", New(&out, nil)}} {
		b.Run(c.name, func(b *testing.B) {
			rec := accessRecord()
			for b.Loop() {
				_ = c.h.Handle(context.Background(), rec)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
