// Command sipcalls measures verifyd's voice-call path against sipp on
// loopback (bench/sip.sh starts both). It places -n call verifications one
// after the other through the API and reports, with p50/p99/max:
//
//   - trigger → INVITE: from the API's 200 (and from sending the request) to
//     sipp receiving the INVITE (sipp's message trace timestamp);
//   - answer → first RTP: from sipp sending the 200 OK to the first RTP
//     packet of that call at this program's RTP tap, the address sipp's
//     answer SDP names (-tap).
//
// Every clock is this machine's wall clock. It prints a table and one JSON
// line (appended to -json).
//
// With -freeport it only prints a free loopback UDP port and exits.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

type stats struct {
	N     int     `json:"n"`
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

type result struct {
	Label           string         `json:"label"`
	Calls           int            `json:"calls"`
	Load1           float64        `json:"load1"`
	API             stats          `json:"api_trigger"`
	TriggerToInvite stats          `json:"api200_to_invite"`
	RequestToInvite stats          `json:"request_to_invite"`
	AnswerToACK     stats          `json:"answer_to_ack"`
	AnswerToRTP     stats          `json:"answer_to_first_rtp"`
	Final           map[string]int `json:"delivery_status"`
	Seconds         float64        `json:"seconds"`
}

func summarize(d []time.Duration) stats {
	if len(d) == 0 {
		return stats{}
	}
	slices.Sort(d)
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	at := func(p float64) time.Duration {
		i := int(p*float64(len(d)) + 0.5)
		return d[min(max(i-1, 0), len(d)-1)]
	}
	return stats{N: len(d), P50ms: ms(at(.50)), P99ms: ms(at(.99)), MaxMs: ms(d[len(d)-1])}
}

// tap records the arrival times of RTP packets per source port.
type tap struct {
	mu      sync.Mutex
	arrived map[int][]time.Time
}

func (t *tap) serve(c net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFrom(buf)
		now := time.Now()
		if err != nil {
			return
		}
		if n < 12 || buf[0]>>6 != 2 {
			continue
		}
		t.mu.Lock()
		p := from.(*net.UDPAddr).Port
		t.arrived[p] = append(t.arrived[p], now)
		t.mu.Unlock()
	}
}

// first returns the first packet from port at or after since.
func (t *tap) first(port int, since time.Time) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, at := range t.arrived[port] {
		if !at.Before(since) {
			return at, true
		}
	}
	return time.Time{}, false
}

// sipMsg is one entry of sipp's -trace_msg file.
type sipMsg struct {
	at       time.Time
	received bool
	start    string // request or status line
	callID   string
	cseq     string
	sdpPort  int
}

var (
	traceHead = regexp.MustCompile(`^-{20,} (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+)`)
	sdpAudio  = regexp.MustCompile(`(?m)^m=audio (\d+) `)
)

func parseTrace(r io.Reader) ([]sipMsg, error) {
	var out []sipMsg
	var cur *sipMsg
	var body strings.Builder
	flush := func() {
		if cur == nil {
			return
		}
		lines := strings.Split(strings.ReplaceAll(body.String(), "\r", ""), "\n")
		for _, l := range lines {
			switch {
			case cur.start == "" && (strings.HasPrefix(l, "SIP/2.0 ") || strings.Contains(l, " SIP/2.0")):
				cur.start = l
			case strings.HasPrefix(strings.ToLower(l), "call-id:"):
				cur.callID = strings.TrimSpace(l[len("call-id:"):])
			case strings.HasPrefix(strings.ToLower(l), "cseq:"):
				cur.cseq = strings.TrimSpace(l[len("cseq:"):])
			}
		}
		if m := sdpAudio.FindStringSubmatch(body.String()); m != nil {
			cur.sdpPort, _ = strconv.Atoi(m[1])
		}
		out = append(out, *cur)
		cur = nil
		body.Reset()
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if m := traceHead.FindStringSubmatch(l); m != nil {
			flush()
			at, err := time.ParseInLocation("2006-01-02 15:04:05.000000", m[1], time.Local)
			if err != nil {
				return nil, err
			}
			cur = &sipMsg{at: at}
			continue
		}
		if cur == nil {
			continue
		}
		if body.Len() == 0 && cur.start == "" && strings.Contains(l, "message received") {
			cur.received = true
		}
		body.WriteString(l)
		body.WriteByte('\n')
	}
	flush()
	return out, sc.Err()
}

func main() {
	var (
		base     = flag.String("url", "http://127.0.0.1:8080", "verifyd base URL (loopback)")
		key      = flag.String("key", "", "API key")
		n        = flag.Int("n", 100, "calls, one after the other")
		tapAddr  = flag.String("tap", "", "loopback UDP address to receive RTP on (sipp's answer SDP names it)")
		trace    = flag.String("msgs", "", "sipp's -message_file")
		label    = flag.String("label", "sip", "label of the result")
		load1    = flag.Float64("load", -1, "1-minute load average when the run started (reported)")
		jsonOut  = flag.String("json", "", "append the JSON result to this file")
		prefix   = flag.String("phone-prefix", "+4474009", "callee numbers: this prefix and a 5-digit index")
		freeport = flag.Bool("freeport", false, "print a free loopback UDP port and exit")
	)
	flag.Parse()
	if *freeport {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(c.LocalAddr().(*net.UDPAddr).Port)
		c.Close()
		return
	}
	if *tapAddr == "" || *trace == "" || *key == "" {
		log.Fatal("-key, -tap and -msgs are required")
	}
	conn, err := net.ListenPacket("udp", *tapAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	tp := &tap{arrived: map[int][]time.Time{}}
	go tp.serve(conn)

	client := &http.Client{Timeout: 10 * time.Second}
	call := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, *base+path, bytes.NewBufferString(body))
		req.Header.Set("Authorization", "Bearer "+*key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			log.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	st, prof := call("POST", "/v2/verify_profiles", `{"name":"sip bench"}`)
	if st != 200 {
		log.Fatalf("create profile: %d %v", st, prof)
	}
	profile := prof["data"].(map[string]any)["id"].(string)

	type sent struct {
		phone      string
		req, ok200 time.Time
	}
	var calls []sent
	final := map[string]int{}
	start := time.Now()
	for i := range *n {
		phone := fmt.Sprintf("%s%05d", *prefix, i)
		t0 := time.Now()
		st, body := call("POST", "/v2/verifications/call", fmt.Sprintf(`{"phone_number":%q,"verify_profile_id":%q}`, phone, profile))
		t1 := time.Now()
		if st != 200 {
			log.Fatalf("trigger %d: %d %v", i, st, body)
		}
		calls = append(calls, sent{phone, t0, t1})
		id := body["data"].(map[string]any)["id"].(string)
		// One call at a time: wait for its outcome.
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, v := call("GET", "/v2/verifications/"+id, "")
			if ds, _ := v["data"].(map[string]any)["delivery_status"].(string); ds != "" {
				final[ds]++
				break
			}
			if time.Now().After(deadline) {
				log.Fatalf("call %d (%s): no delivery status after 30 s", i, id)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	elapsed := time.Since(start)
	time.Sleep(200 * time.Millisecond) // let sipp write its last trace lines

	f, err := os.Open(*trace)
	if err != nil {
		log.Fatal(err)
	}
	msgs, err := parseTrace(f)
	f.Close()
	if err != nil {
		log.Fatal(err)
	}
	invites := map[string]sipMsg{} // callee number → first INVITE received
	answers := map[string]sipMsg{} // Call-ID → 200 OK to INVITE sent
	acks := map[string]sipMsg{}    // Call-ID → ACK received
	for _, m := range msgs {
		switch {
		case m.received && strings.HasPrefix(m.start, "INVITE sip:"):
			user, _, _ := strings.Cut(strings.TrimPrefix(m.start, "INVITE sip:"), "@")
			if _, seen := invites[user]; !seen {
				invites[user] = m
			}
		case m.received && strings.HasPrefix(m.start, "ACK sip:"):
			if _, seen := acks[m.callID]; !seen {
				acks[m.callID] = m
			}
		case !m.received && strings.HasPrefix(m.start, "SIP/2.0 200") && strings.HasSuffix(m.cseq, "INVITE"):
			if _, seen := answers[m.callID]; !seen {
				answers[m.callID] = m
			}
		}
	}
	var api, fromOK, fromReq, ack, rtp []time.Duration
	missing := 0
	for _, c := range calls {
		api = append(api, c.ok200.Sub(c.req))
		inv, ok := invites[c.phone]
		if !ok {
			missing++
			continue
		}
		fromOK = append(fromOK, inv.at.Sub(c.ok200))
		fromReq = append(fromReq, inv.at.Sub(c.req))
		ans, ok := answers[inv.callID]
		if !ok {
			missing++
			continue
		}
		if a, ok := acks[inv.callID]; ok {
			ack = append(ack, a.at.Sub(ans.at))
		}
		if at, ok := tp.first(inv.sdpPort, inv.at); ok {
			rtp = append(rtp, at.Sub(ans.at))
		} else {
			missing++
		}
	}
	res := result{Label: *label, Calls: len(calls), Load1: *load1, API: summarize(api),
		TriggerToInvite: summarize(fromOK), RequestToInvite: summarize(fromReq), AnswerToACK: summarize(ack), AnswerToRTP: summarize(rtp),
		Final: final, Seconds: elapsed.Seconds()}
	fmt.Fprintf(os.Stderr, "%d calls in %.1f s (load %.2f), outcomes %v, %d measurements missing\n",
		len(calls), elapsed.Seconds(), *load1, final, missing)
	fmt.Fprintf(os.Stderr, "%-28s %6s %9s %9s %9s\n", "", "n", "p50 ms", "p99 ms", "max ms")
	for _, row := range []struct {
		name string
		s    stats
	}{{"API trigger (request→200)", res.API}, {"API 200 → INVITE at sipp", res.TriggerToInvite},
		{"request → INVITE at sipp", res.RequestToInvite}, {"200 OK → ACK at sipp", res.AnswerToACK},
		{"200 OK → first RTP", res.AnswerToRTP}} {
		fmt.Fprintf(os.Stderr, "%-28s %6d %9.2f %9.2f %9.2f\n", row.name, row.s.N, row.s.P50ms, row.s.P99ms, row.s.MaxMs)
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	if *jsonOut != "" {
		out, err := os.OpenFile(*jsonOut, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Fprintln(out, string(line))
		out.Close()
	}
	if missing > 0 {
		os.Exit(1)
	}
}
