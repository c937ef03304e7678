package service

import "github.com/verifyd/verifyd"

// DeliveryTest is the delivery_status of a test-mode verification: it is
// the marker in events (every webhook payload of it carries
// "delivery_status": "test") and, as outcomes test_triggered,
// test_accepted and test_rejected, in the verifications metric.
const DeliveryTest = "test"

// testCode returns the fixed code of a test number of the profile's
// channel ("test_numbers": {"+447400000001": "12345"}), if phone is one.
// A test-mode trigger is never sent (its job is stored finished), never
// billed, exempt from the guards and rate limits, and its checks are not
// capped by the failed-check window (D10); the attempt budget of the
// verification still applies.
func testCode(p *verifyd.Profile, ch verifyd.Channel, phone string) (string, bool) {
	m, ok := p.Channels[ch][keyTestNumbers].(map[string]any)
	if !ok {
		return "", false
	}
	code, ok := m[phone].(string)
	if !ok || !reCustomCode.MatchString(code) {
		return "", false
	}
	return code, true
}

// testJob turns a delivery job into the record of a test-mode send: stored
// finished, so no worker ever claims it.
func testJob(j *verifyd.Job) {
	j.State = verifyd.JobFailed
	j.LastError = "test number: never sent"
}
