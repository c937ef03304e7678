// Command webhookload measures verifyd's webhook delivery under trigger load
// (loopback only). It runs a webhook receiver, creates a profile whose
// webhook_url points at it (or none), drives POST /v2/verifications/sms —
// open loop at -rate requests/s, or closed loop with -c workers when -rate
// is 0 — and reports the API's throughput and latency and, for the
// receiver, the lag from each verify.sent event's occurred_at to its
// arrival. It prints one JSON line (also appended to -json).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Label         string  `json:"label"`
	Mode          string  `json:"mode"`
	Rate          int     `json:"rate"`
	C             int     `json:"c"`
	Seconds       float64 `json:"seconds"`
	Sent          int     `json:"sent"`
	OK            int     `json:"ok"`
	Bad           int     `json:"bad"`
	RPS           float64 `json:"rps"`
	P50ms         float64 `json:"p50_ms"`
	P99ms         float64 `json:"p99_ms"`
	MaxMs         float64 `json:"max_ms"`
	Delivered     int     `json:"webhooks_delivered"`
	DeliveredLoad int     `json:"webhooks_delivered_during_load"`
	LagP50ms      float64 `json:"lag_p50_ms"`
	LagP99ms      float64 `json:"lag_p99_ms"`
	LagMaxMs      float64 `json:"lag_max_ms"`
	DrainSeconds  float64 `json:"drain_seconds"`
}

func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(p * float64(len(d)-1))
	return float64(d[i].Microseconds()) / 1000
}

func main() {
	var (
		base   = flag.String("url", "http://127.0.0.1:8080", "verifyd base URL (loopback)")
		key    = flag.String("key", "", "API key")
		mode   = flag.String("mode", "fast", "receiver: none (no webhook_url), fast (answers at once), slow (answers after -slow)")
		slow   = flag.Duration("slow", 2*time.Second, "slow receiver's time per request")
		rate   = flag.Int("rate", 500, "triggers per second, open loop (0: closed loop with -c workers)")
		conc   = flag.Int("c", 64, "workers (closed loop), or most requests in flight (open loop)")
		dur    = flag.Duration("d", 30*time.Second, "load duration")
		drain  = flag.Duration("drain", 60*time.Second, "how long to wait after the load for webhooks still due (fast mode)")
		prefix = flag.String("phone-prefix", "+4474", "phone numbers are this prefix + 8 digits")
		label  = flag.String("label", "", "label of the result")
		out    = flag.String("json", "", "append the result to this file")
	)
	flag.Parse()

	// The receiver.
	var mu sync.Mutex
	var lags []time.Duration
	var delivered, deliveredLoad atomic.Int64
	loadDone := atomic.Bool{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		var ev struct {
			Data struct {
				EventType  string `json:"event_type"`
				OccurredAt string `json:"occurred_at"`
			} `json:"data"`
		}
		body, _ := io.ReadAll(r.Body)
		if json.Unmarshal(body, &ev) == nil && ev.Data.EventType == "verify.sent" {
			if t, err := time.Parse("2006-01-02T15:04:05.000-07:00", ev.Data.OccurredAt); err == nil {
				mu.Lock()
				lags = append(lags, now.Sub(t))
				mu.Unlock()
			}
			delivered.Add(1)
			if !loadDone.Load() {
				deliveredLoad.Add(1)
			}
		}
		if *mode == "slow" {
			time.Sleep(*slow) // the receiver under test is slow on purpose
		}
		w.WriteHeader(http.StatusOK)
	}))

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *conc + 8}}
	do := func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequest(method, *base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+*key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	hook := ""
	if *mode != "none" {
		hook = fmt.Sprintf(`,"webhook_url":"http://%s/hook"`, ln.Addr())
	}
	st, b := do("POST", "/v2/verify_profiles", fmt.Sprintf(`{"name":"webhookload-%d"%s,"sms":{"whitelisted_destinations":["GB"]}}`, time.Now().UnixNano(), hook))
	if st != 200 {
		log.Fatalf("create profile: %d %s", st, b)
	}
	var prof struct{ Data struct{ ID string } }
	json.Unmarshal(b, &prof)

	var seq atomic.Int64
	start0 := time.Now().UnixNano() % 1e6 * 100 // phone numbers differ between runs
	trigger := func() (time.Duration, bool) {
		n := start0 + seq.Add(1)
		body := fmt.Sprintf(`{"phone_number":"%s%08d","verify_profile_id":"%s"}`, *prefix, n%1e8, prof.Data.ID)
		t0 := time.Now()
		st, _ := do("POST", "/v2/verifications/sms", body)
		return time.Since(t0), st == 200
	}

	var lat []time.Duration
	var latMu sync.Mutex
	var ok, bad atomic.Int64
	record := func(d time.Duration, good bool) {
		if good {
			ok.Add(1)
		} else {
			bad.Add(1)
		}
		latMu.Lock()
		lat = append(lat, d)
		latMu.Unlock()
	}
	begin := time.Now()
	end := begin.Add(*dur)
	var wg sync.WaitGroup
	if *rate > 0 {
		// Open loop: request i is due at begin + i/rate; its latency counts
		// from when it was due, so a server that falls behind shows it.
		slots := make(chan struct{}, *conc)
		interval := time.Second / time.Duration(*rate)
		for i := 0; ; i++ {
			due := begin.Add(time.Duration(i) * interval)
			if !due.Before(end) {
				break
			}
			time.Sleep(time.Until(due))
			select {
			case slots <- struct{}{}:
			default:
				bad.Add(1) // more than -c in flight: the server is not keeping up
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, good := trigger()
				record(time.Since(due), good)
				<-slots
			}()
		}
	} else {
		for range *conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					record(trigger())
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(begin)
	loadDone.Store(true)
	sent := int(ok.Load())

	var drained time.Duration
	if *mode == "fast" {
		t0 := time.Now()
		for int(delivered.Load()) < sent && time.Since(t0) < *drain {
			time.Sleep(10 * time.Millisecond) // polling the receiver's count with a deadline
		}
		drained = time.Since(t0)
	}
	mu.Lock()
	res := result{Label: *label, Mode: *mode, Rate: *rate, C: *conc, Seconds: elapsed.Seconds(), Sent: sent + int(bad.Load()),
		OK: sent, Bad: int(bad.Load()), RPS: float64(sent) / elapsed.Seconds(),
		P50ms: pct(lat, 0.50), P99ms: pct(lat, 0.99), MaxMs: pct(lat, 1),
		Delivered: int(delivered.Load()), DeliveredLoad: int(deliveredLoad.Load()),
		LagP50ms: pct(lags, 0.50), LagP99ms: pct(lags, 0.99), LagMaxMs: pct(lags, 1), DrainSeconds: drained.Seconds()}
	mu.Unlock()
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			f.Write(append(bytes.TrimSpace(line), '\n'))
			f.Close()
		}
	}
}
