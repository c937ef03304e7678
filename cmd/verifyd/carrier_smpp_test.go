package main

// SMPP end to end on the real binary against node-smpp (smsc.cjs): what
// the SMSC receives (text, data_coding, addresses, UDH), a refused bind,
// and an SMSC that dies and comes back on the same port.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// kill kills the SMSC process and waits until its output is drained.
func (s *carrierSMSC) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill SMSC: %v", err)
	}
	<-s.exited
}

// submits returns the SMSC's submit_sm events to destination (digits).
func (s *carrierSMSC) submits(dest string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, e := range s.events {
		if e["event"] == "submit_sm" && e["destination_addr"] == dest {
			out = append(out, e)
		}
	}
	return out
}

// restart stops verifyd (SIGTERM, clean exit) and starts it again on the
// same database and config with env added to the process environment.
func (e *carrierEnv) restart(t *testing.T, env ...string) {
	t.Helper()
	e.srv.stop(t)
	e.srv = sdkStartServer(t, context.Background(), binary(t), append(os.Environ(), env...), e.args...)
}

// createProfile creates a profile from a JSON body and returns its ID.
func (e *carrierEnv) createProfile(t *testing.T, body string) string {
	t.Helper()
	st, out := e.do(t, "POST", "/v2/verify_profiles", body)
	if st != 200 {
		t.Fatalf("create profile %s: %d %v", body, st, out)
	}
	return out["data"].(map[string]any)["id"].(string)
}

// triggerWith starts an SMS verification of profile and returns its ID.
func (e *carrierEnv) triggerWith(t *testing.T, profile, phone string) string {
	t.Helper()
	st, body := e.do(t, "POST", "/v2/verifications/sms", fmt.Sprintf(`{"phone_number":%q,"verify_profile_id":%q}`, phone, profile))
	if st != 200 {
		t.Fatalf("trigger: %d %v", st, body)
	}
	return body["data"].(map[string]any)["id"].(string)
}

// pollUntil polls cond every 20 ms until it holds or d passes.
func pollUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func smppConfig(port int, extra string) string {
	return fmt.Sprintf(`
senders:
  - name: smsc
    type: smpp
    smpp:
      address: 127.0.0.1:%d
      system_id: test
      password: ${VERIFYD_TEST_SMPP_PASSWORD}
      source_addr: Verifyd
%s
routes:
  - {channel: sms, senders: [smsc]}
`, port, extra)
}

// stablePort returns a free loopback TCP port in 20000–32767, below
// Linux's default ephemeral range (32768–60999), so the kernel never hands
// it to a listener asking for port 0.
func stablePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		port := 20000 + rand.IntN(12768)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port in 20000–32767")
	return 0
}

var sixDigits = regexp.MustCompile(`^\d{6}$`)

// TestCarrier_SMPPMessages: what the SMSC receives for a 6-digit code in
// English (GSM 03.38, data_coding 0), in Russian (UCS-2, data_coding 8)
// and from a long template (two parts with one UDH reference, numbered 1
// and 2 of 2); each code the SMSC got verifies.
func TestCarrier_SMPPMessages(t *testing.T) {
	smsc := startCarrierSMSC(t)
	e := startCarrierEnv(t, smppConfig(smsc.port, ""), []string{"VERIFYD_TEST_SMPP_PASSWORD=secret"})
	verify := func(id, code string) {
		t.Helper()
		st, body := e.do(t, "POST", "/v2/verifications/"+id+"/actions/verify", fmt.Sprintf(`{"code":%q}`, code))
		if st != 200 || body["data"].(map[string]any)["response_code"] != "accepted" {
			t.Fatalf("verify %s with the SMSC's code %s: %d %v", id, code, st, body)
		}
	}
	wantAddresses := func(sub map[string]any, dest string) {
		t.Helper()
		// Alphanumeric sender: TON 5 NPI 0; E.164 destination: TON 1 NPI 1, no '+'.
		if sub["source_addr"] != "Verifyd" || sub["source_addr_ton"] != float64(5) || sub["source_addr_npi"] != float64(0) ||
			sub["destination_addr"] != dest || sub["dest_addr_ton"] != float64(1) || sub["dest_addr_npi"] != float64(1) ||
			sub["registered_delivery"] != float64(1) || sub["status"] != float64(0) {
			t.Fatalf("submit_sm addresses = %v", sub)
		}
	}

	t.Run("GSM", func(t *testing.T) {
		p := e.createProfile(t, `{"name":"Shop","sms":{"code_length":6,"whitelisted_destinations":["GB"]}}`)
		id := e.triggerWith(t, p, "+447400123460")
		sub := smsc.wait(t, "submit_sm GSM", func(m map[string]any) bool {
			return m["event"] == "submit_sm" && m["destination_addr"] == "447400123460"
		})
		wantAddresses(sub, "447400123460")
		text, _ := sub["text"].(string)
		code, rest, _ := strings.Cut(text, " ")
		if !sixDigits.MatchString(code) || rest != "is your Shop verification code." {
			t.Fatalf("SMS text %q, want \"<6 digits> is your Shop verification code.\"", text)
		}
		if sub["data_coding"] != float64(0) || sub["esm_class"] != float64(0) || len(sub["udh"].([]any)) != 0 {
			t.Fatalf("GSM SMS: data_coding %v esm_class %v udh %v, want 0, 0, none", sub["data_coding"], sub["esm_class"], sub["udh"])
		}
		e.waitDelivery(t, id, "delivered")
		verify(id, code)
	})

	t.Run("Cyrillic", func(t *testing.T) {
		p := e.createProfile(t, `{"name":"Магазин","language":"ru","sms":{"code_length":6,"whitelisted_destinations":["GB"]}}`)
		id := e.triggerWith(t, p, "+447400123461")
		sub := smsc.wait(t, "submit_sm UCS-2", func(m map[string]any) bool {
			return m["event"] == "submit_sm" && m["destination_addr"] == "447400123461"
		})
		wantAddresses(sub, "447400123461")
		text, _ := sub["text"].(string)
		code, rest, _ := strings.Cut(text, " ")
		if !sixDigits.MatchString(code) || rest != "— ваш код подтверждения Магазин." {
			t.Fatalf("SMS text %q, want \"<6 digits> — ваш код подтверждения Магазин.\"", text)
		}
		if sub["data_coding"] != float64(8) || len(sub["udh"].([]any)) != 0 {
			t.Fatalf("Cyrillic SMS: data_coding %v udh %v, want 8 (UCS-2), one part", sub["data_coding"], sub["udh"])
		}
		e.waitDelivery(t, id, "delivered")
		verify(id, code)
	})

	t.Run("Concatenated", func(t *testing.T) {
		long := "{{code}} is your code for {{app_name}}. " + strings.Repeat("Never share it with anyone, not even our staff. ", 5) + "Thank you."
		st, body := e.do(t, "POST", "/v2/verify_profiles/templates", fmt.Sprintf(`{"text":%q}`, long))
		if st != 200 {
			t.Fatalf("create template: %d %v", st, body)
		}
		tpl := body["data"].(map[string]any)["id"].(string)
		p := e.createProfile(t, fmt.Sprintf(`{"name":"Long","sms":{"code_length":6,"messaging_template_id":%q,"whitelisted_destinations":["GB"]}}`, tpl))
		id := e.triggerWith(t, p, "+447400123462")
		pollUntil(t, 15*time.Second, "two parts at the SMSC", func() bool { return len(smsc.submits("447400123462")) >= 2 })
		parts := smsc.submits("447400123462")
		if len(parts) != 2 {
			t.Fatalf("%d parts, want 2", len(parts))
		}
		var ref string
		var text strings.Builder
		for i, sub := range parts {
			wantAddresses(sub, "447400123462")
			udh, _ := sub["udh"].([]any)
			// node-smpp strips the UDH length and splits the elements:
			// IE 00 (8-bit reference), length 03, ref, total, sequence.
			if len(udh) != 1 || sub["esm_class"].(float64) != 0x40 || sub["data_coding"] != float64(0) {
				t.Fatalf("part %d: udh %v esm_class %v data_coding %v, want one concatenation IE, UDHI, GSM", i+1, udh, sub["esm_class"], sub["data_coding"])
			}
			ie, _ := udh[0].(string)
			if len(ie) != 10 || ie[:4] != "0003" || ie[6:8] != "02" || ie[8:] != fmt.Sprintf("%02x", i+1) {
				t.Fatalf("part %d: concatenation IE %s, want 0003<ref>02%02x", i+1, ie, i+1)
			}
			if i == 0 {
				ref = ie[4:6]
			} else if ie[4:6] != ref {
				t.Fatalf("part %d has reference %s, part 1 %s", i+1, ie[4:6], ref)
			}
			if n := len(sub["text"].(string)); n > 153 {
				t.Fatalf("part %d carries %d characters, more than 153", i+1, n)
			}
			text.WriteString(sub["text"].(string))
		}
		code, _, _ := strings.Cut(text.String(), " ")
		want := strings.NewReplacer("{{code}}", code, "{{app_name}}", "Long").Replace(long)
		if !sixDigits.MatchString(code) || text.String() != want {
			t.Fatalf("parts joined = %q\nwant %q", text.String(), want)
		}
		e.waitDelivery(t, id, "delivered")
		verify(id, code)
	})
}

// TestCarrier_SMPPWrongPassword: the SMSC refuses the bind (0x0E); verifyd
// keeps running, says so clearly in its log, and the message stays queued
// (pending, no delivery status) until verifyd restarts with the right
// password: then it arrives, once.
func TestCarrier_SMPPWrongPassword(t *testing.T) {
	smsc := startCarrierSMSC(t)
	e := startCarrierEnv(t, smppConfig(smsc.port, "      response_timeout: 1s\n      reconnect_min: 200ms\n      reconnect_max: 1s"),
		[]string{"VERIFYD_TEST_SMPP_PASSWORD=wrong"})
	if b := smsc.wait(t, "bind", event("bind")); b["status"] != float64(0x0E) || b["system_id"] != "test" {
		t.Fatalf("bind = %v, want status 0x0E (ESME_RINVPASWD)", b)
	}
	id := e.triggerWith(t, e.profile, "+447400123463")
	// The worker tried and failed (no bind); the job is queued for a retry.
	pollUntil(t, 15*time.Second, "a failed attempt through smsc", func() bool {
		return e.metric(t, `verifyd_sender_attempts_total{outcome="error",sender="smsc"}`) >= 1
	})
	if n := e.metric(t, "verifyd_queue_depth"); n != 1 {
		t.Fatalf("queue depth %v after the failed attempt, want 1 (the job kept)", n)
	}
	v := e.verification(t, id)
	if v["status"] != "pending" || v["delivery_status"] != nil && v["delivery_status"] != "" {
		t.Fatalf("verification after a refused bind: status %v delivery_status %v, want pending, none", v["status"], v["delivery_status"])
	}
	log := e.srv.stderrTail(400)
	if !strings.Contains(log, "smpp: bind refused") || !strings.Contains(log, "ESME_RINVPASWD") || !strings.Contains(log, `"sender":"smsc"`) && !strings.Contains(log, "smsc") {
		t.Fatalf("verifyd's log does not say the bind was refused for a wrong password:\n%s", log)
	}
	if strings.Contains(log, "wrong") {
		t.Fatalf("verifyd's log shows the password:\n%s", log)
	}
	if got := smsc.submits("447400123463"); len(got) != 0 {
		t.Fatalf("the SMSC got %d submit_sm without a bind", len(got))
	}

	e.restart(t, "VERIFYD_TEST_SMPP_PASSWORD=secret")
	e.waitDeliveryWithin(t, id, "delivered", 30*time.Second)
	pollUntil(t, 15*time.Second, "empty queue", func() bool { return e.metric(t, "verifyd_queue_depth") == 0 })
	if got := smsc.submits("447400123463"); len(got) != 1 {
		t.Fatalf("the SMSC got the queued message %d times, want once", len(got))
	}
}

// TestCarrier_SMPPRestart: the SMSC process is killed and started again on
// the same port. verifyd rebinds, and every message triggered during the
// outage reaches the new SMSC exactly once.
func TestCarrier_SMPPRestart(t *testing.T) {
	// A port below the ephemeral range: while the SMSC is down, no other
	// test's listener on port 0 can be handed it.
	port := stablePort(t)
	smsc := startCarrierSMSC(t, fmt.Sprintf("SMSC_PORT=%d", port))
	e := startCarrierEnv(t, smppConfig(port, "      response_timeout: 1s\n      reconnect_min: 100ms\n      reconnect_max: 500ms"),
		[]string{"VERIFYD_TEST_SMPP_PASSWORD=secret"})
	before := e.trigger(t, "+447400123470")
	e.waitDelivery(t, before, "delivered")

	smsc.kill(t)
	phones := []string{"+447400123471", "+447400123472", "+447400123473"}
	var ids []string
	for _, p := range phones {
		ids = append(ids, e.trigger(t, p))
	}
	// Each was tried during the outage and failed (no bind).
	pollUntil(t, 20*time.Second, "three failed attempts during the outage", func() bool {
		return e.metric(t, `verifyd_sender_attempts_total{outcome="error",sender="smsc"}`) >= 3
	})
	for _, id := range ids {
		if v := e.verification(t, id); v["status"] != "pending" {
			t.Fatalf("verification during the outage: %v", v)
		}
	}

	// Its message ids go on from elsewhere, as a real SMSC's would: a
	// receipt names its message by id alone.
	again := startCarrierSMSC(t, fmt.Sprintf("SMSC_PORT=%d", port), "SMSC_FIRST_ID=2B0000")
	if again.port != port {
		t.Fatalf("SMSC restarted on port %d, want %d", again.port, port)
	}
	if b := again.wait(t, "rebind", event("bind")); b["status"] != float64(0) {
		t.Fatalf("rebind = %v", b)
	}
	for _, id := range ids {
		e.waitDeliveryWithin(t, id, "delivered", 30*time.Second)
	}
	pollUntil(t, 15*time.Second, "empty queue", func() bool { return e.metric(t, "verifyd_queue_depth") == 0 })
	for _, p := range phones {
		dest := strings.TrimPrefix(p, "+")
		if n := len(again.submits(dest)); n != 1 {
			t.Errorf("%s reached the restarted SMSC %d times, want exactly once", p, n)
		}
		if n := len(smsc.submits(dest)); n != 0 {
			t.Errorf("%s reached the killed SMSC %d times", p, n)
		}
	}
	if n := e.metric(t, `verifyd_sender_attempts_total{outcome="sent",sender="smsc"}`); n != 4 {
		t.Errorf("sent attempts = %v, want 4", n)
	}
}
