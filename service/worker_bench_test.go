package service_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/service"
)

// countingSender takes every message at once, as the console sender does.
type countingSender struct{ n atomic.Int64 }

func (c *countingSender) Send(_ context.Context, m *verifyd.Message) (*verifyd.SendResult, error) {
	n := c.n.Add(1)
	return &verifyd.SendResult{Sender: "bench", ProviderMessageID: fmt.Sprintf("b-%d", n), Parts: 1}, nil
}

// BenchmarkTriggerDelivered measures triggers from 16 parallel callers on
// SQLite with the delivery worker running (hand-off, a sender that takes
// every message at once): the timer stops once every verification's
// delivery is recorded, so ns/op and cpu-µs/op (the process's CPU time per
// trigger) cover a trigger and its delivery record. "record_each" records
// each batch of sends as soon as it is sent; "record_window" holds the
// outcomes up to WorkerOptions.RecordWindow (its default) to record them
// together.
func BenchmarkTriggerDelivered(b *testing.B) {
	for _, c := range []struct {
		name   string
		window time.Duration
	}{{"record_each", -1}, {"record_window", 0}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			store, svc := benchService(b, service.Options{})
			acct, _ := svc.CreateAccount(ctx, "a")
			p, err := svc.CreateProfile(ctx, acct, map[string]any{"name": "p",
				"sms": map[string]any{"whitelisted_destinations": []any{"GB"}}})
			if err != nil {
				b.Fatal(err)
			}
			w := svc.NewWorker(&countingSender{}, service.WorkerOptions{RecordWindow: c.window})
			w.Start(ctx)
			defer w.Stop()

			var n atomic.Int64
			b.SetParallelism(8) // 16 callers on 2 cores
			cpu0 := cpuTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					phone := fmt.Sprintf("+4474%02d%06d", i%100, i/100)
					if _, err := svc.Trigger(ctx, acct, service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: phone, ProfileID: p.ID}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			// Every delivery recorded: the queue is empty.
			deadline := time.Now().Add(time.Minute)
			for {
				depth, err := store.QueueDepth(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if depth == 0 {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("%d deliveries still unrecorded after a minute", depth)
				}
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/1e3/float64(b.N), "cpu-µs/op")
		})
	}
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
