package api

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/verifyd/verifyd"
)

// routes wires the whole API (API.md §1, #1–#16). Literal segments
// (templates, by_phone_number, the channel names) are more specific than
// the {id} wildcards beside them, so the mux prefers them whatever the
// order; they are listed first anyway to read like §1. Verified numbers
// (#17–#21), DTMF confirm, RCS and the legacy POST /verifications are not
// served (D38): they fall through to 404 10005.
func (s *Server) routes() {
	m := s.mux

	// Verifications.
	m.Handle("POST /v2/verifications/sms", s.authed(s.trigger(verifyd.SMS)))
	m.Handle("POST /v2/verifications/call", s.authed(s.trigger(verifyd.Call)))
	m.Handle("POST /v2/verifications/flashcall", s.authed(s.trigger(verifyd.Flashcall)))
	m.Handle("POST /v2/verifications/whatsapp", s.authed(s.trigger(verifyd.WhatsApp)))
	m.Handle("GET /v2/verifications/by_phone_number/{phone_number}", s.authed(s.handleVerificationsByPhone))
	m.Handle("POST /v2/verifications/by_phone_number/{phone_number}/actions/verify", s.authed(s.handleCheckByPhone))
	m.Handle("GET /v2/verifications/{verification_id}", s.authed(s.handleVerificationGet))
	m.Handle("POST /v2/verifications/{verification_id}/actions/verify", s.authed(s.handleCheckByID))

	// Message templates (before /verify_profiles/{id}, §1).
	m.Handle("GET /v2/verify_profiles/templates", s.authed(s.handleTemplateList))
	m.Handle("POST /v2/verify_profiles/templates", s.authed(s.handleTemplateCreate))
	m.Handle("PATCH /v2/verify_profiles/templates/{template_id}", s.authed(s.handleTemplateUpdate))

	// Verify profiles.
	m.Handle("GET /v2/verify_profiles", s.authed(s.handleProfileList))
	m.Handle("POST /v2/verify_profiles", s.authed(s.handleProfileCreate))
	m.Handle("GET /v2/verify_profiles/{verify_profile_id}", s.authed(s.handleProfileGet))
	m.Handle("PATCH /v2/verify_profiles/{verify_profile_id}", s.authed(s.handleProfileUpdate))
	m.Handle("DELETE /v2/verify_profiles/{verify_profile_id}", s.authed(s.handleProfileDelete))

	// Operations, without auth.
	// Webhook delivery log, redelivery and signing keys (verifyd extensions).
	m.Handle("GET /v2/webhook_deliveries", s.authed(s.handleWebhookDeliveryList))
	m.Handle("POST /v2/webhook_deliveries/actions/redeliver", s.authed(s.handleWebhookRedeliverMany))
	m.Handle("GET /v2/webhook_deliveries/{id}", s.authed(s.handleWebhookDeliveryGet))
	m.Handle("POST /v2/webhook_deliveries/{id}/actions/redeliver", s.authed(s.handleWebhookRedeliver))
	m.Handle("GET /v2/webhook_keys", s.authed(s.handleWebhookKeys))

	s.adminRoutes(m) // operator: fraud blocks (fraud.go)

	m.HandleFunc("GET /healthz", s.handleHealthz)
	m.HandleFunc("GET /readyz", s.handleReadyz)
	if s.gather != nil {
		m.Handle("GET /metrics", promhttp.HandlerFor(s.gather, promhttp.HandlerOpts{}))
	}
}

// literalPaths are the paths whose last segment is a literal next to an
// {id} wildcard, with the methods they allow ("" = not served, 404: D38).
// The mux would let the wildcard take a method the literal path lacks (GET
// /v2/verifications/sms as verification "sms" → 400 10006, and an Allow
// header naming the wildcard's methods); ServeHTTP answers these from this
// table first, so a literal path reads as what it is.
var literalPaths = map[string]string{
	"/v2/verifications/sms":             "POST",
	"/v2/verifications/call":            "POST",
	"/v2/verifications/flashcall":       "POST",
	"/v2/verifications/whatsapp":        "POST",
	"/v2/verify_profiles/templates":     "GET, HEAD, POST",
	"/v2/verifications/by_phone_number": "",
	"/v2/verifications/dtmf_confirm":    "",
	"/v2/verifications/rcs":             "",
}

// literalRefusal returns the error for a request to a literal path that
// does not serve its method, or nil.
func literalRefusal(r *http.Request) (allow string, err error) {
	allow, ok := literalPaths[r.URL.Path]
	if !ok {
		return "", nil
	}
	if allow == "" {
		return "", errRouteNotFound
	}
	for rest := allow; rest != ""; {
		var m string
		m, rest, _ = strings.Cut(rest, ", ")
		if m == r.Method {
			return "", nil
		}
	}
	return allow, methodNotAllowed(r.Method, allow)
}
