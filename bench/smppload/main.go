// Command smppload measures end-to-end SMS delivery latency through
// verifyd to an SMPP SMSC (smpp/testdata/smsc.cjs on node-smpp, loopback
// only): it creates a profile, drives POST /v2/verifications/sms open loop
// at -rate requests/s for -d, one phone number per request, and records
// when each 200 arrived. Then it reads the SMSC's event log (-smsc-log, JSON
// lines with "ts", Unix ms) and, per message, takes the time from the
// API's 200 to the SMSC's submit_sm for that number. It prints one JSON
// line (also appended to -json).
//
// The latency can be negative: the worker may hand the message to the SMSC
// before the 200 reaches the client (the job is handed off in process).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

type result struct {
	Label      string  `json:"label"`
	Rate       int     `json:"rate"`
	Seconds    float64 `json:"seconds"`
	Sent       int     `json:"sent"`
	OK         int     `json:"ok"`
	Bad        int     `json:"bad"`
	APIP50ms   float64 `json:"api_p50_ms"`
	APIP99ms   float64 `json:"api_p99_ms"`
	Submitted  int     `json:"submitted"`
	Missing    int     `json:"missing"`
	Duplicates int     `json:"duplicates"`
	P50ms      float64 `json:"e2e_p50_ms"`
	P90ms      float64 `json:"e2e_p90_ms"`
	P99ms      float64 `json:"e2e_p99_ms"`
	MaxMs      float64 `json:"e2e_max_ms"`
	MinMs      float64 `json:"e2e_min_ms"`
}

func pct(d []float64, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[int(p*float64(len(d)-1))]
}

func ms(t time.Time) float64 { return float64(t.UnixNano()) / 1e6 }

func main() {
	var (
		base    = flag.String("url", "http://127.0.0.1:8080", "verifyd base URL (loopback)")
		key     = flag.String("key", "", "API key")
		rate    = flag.Int("rate", 200, "triggers per second, open loop")
		conc    = flag.Int("c", 256, "most requests in flight")
		dur     = flag.Duration("d", 30*time.Second, "load duration")
		drain   = flag.Duration("drain", 60*time.Second, "how long to wait for the SMSC to see every message")
		smscLog = flag.String("smsc-log", "", "the SMSC's JSON event log (smsc.cjs stdout)")
		prefix  = flag.String("phone-prefix", "+4474", "phone numbers are this prefix + 8 digits")
		label   = flag.String("label", "", "label of the result")
		out     = flag.String("json", "", "append the result to this file")
	)
	flag.Parse()
	if *smscLog == "" {
		log.Fatal("-smsc-log is required")
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *conc}}
	do := func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequest(method, *base+path, bytes.NewBufferString(body))
		req.Header.Set("Authorization", "Bearer "+*key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, []byte(err.Error())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	st, b := do("POST", "/v2/verify_profiles", fmt.Sprintf(`{"name":"smppload-%d","sms":{"code_length":6,"whitelisted_destinations":["GB"]}}`, time.Now().UnixNano()))
	if st != 200 {
		log.Fatalf("create profile: %d %s", st, b)
	}
	var prof struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &prof); err != nil {
		log.Fatal(err)
	}
	phone := func(i int) string { return fmt.Sprintf("%s%08d", *prefix, i%1e8) }
	// The SMSC's destination_addr: E.164 digits without '+'.
	dest := func(i int) string { return phone(i)[1:] }

	n := int(dur.Seconds() * float64(*rate))
	done := make([]time.Time, n) // when request i's 200 arrived (zero: not OK)
	apiLat := make([]float64, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, *conc)
	interval := time.Second / time.Duration(*rate)
	begin := time.Now()
	for i := range n {
		due := begin.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			st, _ := do("POST", "/v2/verifications/sms", fmt.Sprintf(`{"phone_number":%q,"verify_profile_id":%q}`, phone(i), prof.Data.ID))
			now := time.Now()
			if st == 200 {
				done[i] = now
				apiLat[i] = float64(now.Sub(due).Microseconds()) / 1000
			}
		})
	}
	wg.Wait()
	res := result{Label: *label, Rate: *rate, Seconds: time.Since(begin).Seconds(), Sent: n}
	index := make(map[string]int, n)
	var api []float64
	for i := range n {
		if done[i].IsZero() {
			res.Bad++
			continue
		}
		res.OK++
		index[dest(i)] = i
		api = append(api, apiLat[i])
	}
	res.APIP50ms, res.APIP99ms = pct(api, .50), pct(api, .99)

	// Read the SMSC's log until every OK request's submit_sm is there.
	submitted := map[string]float64{}
	var offset int64
	deadline := time.Now().Add(*drain)
	for {
		f, err := os.Open(*smscLog)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			log.Fatal(err)
		}
		r := bufio.NewReader(f)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				break // a partial last line is read again next time
			}
			offset += int64(len(line))
			var e struct {
				Event  string  `json:"event"`
				Dest   string  `json:"destination_addr"`
				Status int     `json:"status"`
				TS     float64 `json:"ts"`
			}
			if json.Unmarshal(line, &e) != nil || e.Event != "submit_sm" || e.Status != 0 {
				continue
			}
			if _, ok := index[e.Dest]; !ok {
				continue
			}
			if _, seen := submitted[e.Dest]; seen {
				res.Duplicates++
				continue
			}
			submitted[e.Dest] = e.TS
		}
		f.Close()
		if len(submitted) >= res.OK || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling a file another process writes, with a deadline
	}
	var e2e []float64
	for d, ts := range submitted {
		e2e = append(e2e, ts-ms(done[index[d]]))
	}
	res.Submitted, res.Missing = len(submitted), res.OK-len(submitted)
	res.P50ms, res.P90ms, res.P99ms = pct(e2e, .50), pct(e2e, .90), pct(e2e, .99)
	if len(e2e) > 0 {
		res.MinMs, res.MaxMs = e2e[0], e2e[len(e2e)-1]
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		fmt.Fprintln(f, string(line))
	}
}
