package api

import (
	"net/http"

	"github.com/verifyd/verifyd"
)

// profileJSON is the VerifyProfile object (§4.1) with the defaults of D24
// filled in.
type profileJSON struct {
	ID                     string         `json:"id"`
	RecordType             string         `json:"record_type"`
	Name                   string         `json:"name"`
	WebhookURL             *string        `json:"webhook_url"`
	WebhookFailoverURL     *string        `json:"webhook_failover_url"`
	Language               string         `json:"language"`
	DailySpendLimit        *float64       `json:"daily_spend_limit"`
	DailySpendLimitEnabled bool           `json:"daily_spend_limit_enabled"`
	SMS                    map[string]any `json:"sms"`
	Call                   map[string]any `json:"call"`
	Flashcall              map[string]any `json:"flashcall"`
	WhatsApp               map[string]any `json:"whatsapp"`
	CreatedAt              string         `json:"created_at"`
	UpdatedAt              string         `json:"updated_at"`
}

// channelFields lists, per channel, the fields a response always carries
// (§4.2 response columns; flashcall also shows whitelisted_destinations,
// D24).
var channelFields = map[verifyd.Channel][]string{
	verifyd.SMS: {"app_name", "code_length", "default_verification_timeout_secs",
		"messaging_template_id", "whitelisted_destinations", "alpha_sender"},
	verifyd.Call: {"app_name", "code_length", "default_verification_timeout_secs",
		"messaging_template_id", "whitelisted_destinations"},
	verifyd.Flashcall: {"app_name", "default_verification_timeout_secs", "whitelisted_destinations"},
	verifyd.WhatsApp: {"app_name", "code_length", "default_verification_timeout_secs",
		"messaging_template_id", "whitelisted_destinations", "sender_phone_number", "template_id", "waba_id"},
}

// toProfile renders p with every channel filled in (D24): stored keys are
// echoed (unknown ones too, D27), the alias default_timeout_secs never
// (D26), and missing known fields take their defaults.
func (s *Server) toProfile(p *verifyd.Profile) profileJSON {
	out := profileJSON{
		ID: p.ID, RecordType: "verification_profile", Name: p.Name,
		Language: p.LanguageOrDefault(), DailySpendLimit: p.DailySpendLimit,
		DailySpendLimitEnabled: p.DailySpendLimitEnabled,
		SMS:                    s.channel(p, verifyd.SMS),
		Call:                   s.channel(p, verifyd.Call),
		Flashcall:              s.channel(p, verifyd.Flashcall),
		WhatsApp:               s.channel(p, verifyd.WhatsApp),
		CreatedAt:              verifyd.FormatTime(p.CreatedAt),
		UpdatedAt:              verifyd.FormatTime(p.UpdatedAt),
	}
	if p.WebhookURL != "" {
		out.WebhookURL = &p.WebhookURL
	}
	if p.WebhookFailoverURL != "" {
		out.WebhookFailoverURL = &p.WebhookFailoverURL
	}
	return out
}

func (s *Server) channel(p *verifyd.Profile, ch verifyd.Channel) map[string]any {
	stored := p.Channels[ch]
	fields := channelFields[ch]
	out := make(map[string]any, len(stored)+len(fields))
	for k, v := range stored {
		if k != "default_timeout_secs" {
			out[k] = v
		}
	}
	set := p.Settings(ch)
	for _, f := range fields {
		if _, ok := out[f]; ok && f != "default_verification_timeout_secs" {
			continue
		}
		switch f {
		case "code_length":
			out[f] = verifyd.DefaultCodeLength
		case "default_verification_timeout_secs":
			out[f] = set.TimeoutSecs // the canonical name, or the alias's value
		case "whitelisted_destinations":
			d := s.svc.DefaultDestinations()
			out[f] = append(make([]string, 0, len(d)), d...)
		default:
			out[f] = nil
		}
	}
	return out
}

// handleProfileCreate handles POST /v2/verify_profiles (§4.4). The body
// is passed to the service as decoded JSON; it validates every field.
func (s *Server) handleProfileCreate(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
	var body map[string]any
	if err := decode(r, &body); err != nil {
		return err
	}
	p, err := s.svc.CreateProfile(r.Context(), acct, body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, data[profileJSON]{s.toProfile(p)})
	return nil
}

// handleProfileGet handles GET /v2/verify_profiles/{verify_profile_id}.
func (s *Server) handleProfileGet(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
	id, err := checkID(r, "verify_profile_id")
	if err != nil {
		return err
	}
	p, err := s.svc.GetProfile(r.Context(), acct, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, data[profileJSON]{s.toProfile(p)})
	return nil
}

// handleProfileList handles GET /v2/verify_profiles (§4.3, D23).
func (s *Server) handleProfileList(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
	q := r.URL.Query()
	p, err := parsePage(q)
	if err != nil {
		return err
	}
	var name *string
	if v, ok := q["filter[name]"]; ok {
		name = &v[0]
	}
	ps, total, err := s.svc.ListProfiles(r.Context(), acct, name, p.offset(), p.size)
	if err != nil {
		return err
	}
	out := list[profileJSON]{Data: make([]profileJSON, len(ps)), Meta: p.meta(total)}
	for i, prof := range ps {
		out.Data[i] = s.toProfile(prof)
	}
	writeJSON(w, http.StatusOK, &out)
	return nil
}

// handleProfileUpdate handles PATCH /v2/verify_profiles/{verify_profile_id}:
// the decoded object is a JSON Merge Patch the service applies (D25).
func (s *Server) handleProfileUpdate(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
	id, err := checkID(r, "verify_profile_id")
	if err != nil {
		return err
	}
	var patch map[string]any
	if err := decode(r, &patch); err != nil {
		return err
	}
	p, err := s.svc.UpdateProfile(r.Context(), acct, id, patch)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, data[profileJSON]{s.toProfile(p)})
	return nil
}

// handleProfileDelete handles DELETE /v2/verify_profiles/{verify_profile_id}
// and answers the deleted record (D30).
func (s *Server) handleProfileDelete(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
	id, err := checkID(r, "verify_profile_id")
	if err != nil {
		return err
	}
	p, err := s.svc.DeleteProfile(r.Context(), acct, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, data[profileJSON]{s.toProfile(p)})
	return nil
}
