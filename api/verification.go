package api

import (
	"net/http"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/service"
)

// verificationJSON is the Verification object (§3.1).
type verificationJSON struct {
	ID              string          `json:"id"`
	RecordType      string          `json:"record_type"`
	Type            verifyd.Channel `json:"type"`
	PhoneNumber     string          `json:"phone_number"`
	VerifyProfileID string          `json:"verify_profile_id"`
	CustomCode      *string         `json:"custom_code"`
	Status          verifyd.Status  `json:"status"`
	TimeoutSecs     int             `json:"timeout_secs"`
	// DeliveryStatus is a verifyd extension (as in webhook payloads, D33):
	// null until a sender took the message.
	DeliveryStatus *string `json:"delivery_status"`
	CreatedAt      string  `json:"created_at"`
	UpdatedAt      string  `json:"updated_at"`
}

// toVerification renders v; customCode is echoed only by the trigger
// response (D12), everywhere else it is null.
func toVerification(v *verifyd.Verification, customCode *string) verificationJSON {
	return verificationJSON{
		ID: v.ID, RecordType: "verification", Type: v.Type, PhoneNumber: v.PhoneNumber,
		VerifyProfileID: v.ProfileID, CustomCode: customCode, Status: v.Status,
		TimeoutSecs: v.TimeoutSecs, CreatedAt: verifyd.FormatTime(v.CreatedAt),
		UpdatedAt: verifyd.FormatTime(v.UpdatedAt), DeliveryStatus: deliveryStatus(v),
	}
}

func deliveryStatus(v *verifyd.Verification) *string {
	if v.DeliveryStatus == "" {
		return nil
	}
	return &v.DeliveryStatus
}

// triggerBody is a trigger request (§3.2). Decoded into a struct, not a
// map: this is the hot path.
type triggerBody struct {
	PhoneNumber     *string `json:"phone_number"`
	VerifyProfileID *string `json:"verify_profile_id"`
	TimeoutSecs     *int    `json:"timeout_secs"`
	CustomCode      *string `json:"custom_code"`
	Extension       *string `json:"extension"`
}

// check reports every missing required field (null counts as missing).
func (b *triggerBody) check() error {
	return required(
		requiredField{"phone_number", b.PhoneNumber != nil},
		requiredField{"verify_profile_id", b.VerifyProfileID != nil},
	)
}

// trigger handles POST /v2/verifications/{sms,call,flashcall,whatsapp}.
func (s *Server) trigger(ch verifyd.Channel) apiFunc {
	return func(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
		var b triggerBody
		if err := decode(r, &b); err != nil {
			return err
		}
		if err := b.check(); err != nil {
			return err
		}
		if ch == verifyd.Flashcall {
			b.CustomCode = nil // no custom code for flash calls (§3.2, D12)
		}
		req := service.TriggerRequest{
			Channel: ch, PhoneNumber: *b.PhoneNumber, ProfileID: *b.VerifyProfileID,
			TimeoutSecs: b.TimeoutSecs, CustomCode: b.CustomCode, Extension: b.Extension,
		}
		if key := r.Header.Get(headerIdempotencyKey); key != "" {
			return s.triggerReplayable(w, r, acct, key, req, b.CustomCode) // D13 (fraud.go)
		}
		v, err := s.svc.Trigger(r.Context(), acct, req)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, data[verificationJSON]{toVerification(v, b.CustomCode)})
		return nil
	}
}

// handleVerificationGet handles GET /v2/verifications/{verification_id}.
func (s *Server) handleVerificationGet(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
	id, err := checkID(r, "verification_id")
	if err != nil {
		return err
	}
	v, err := s.svc.GetVerification(r.Context(), acct, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, data[verificationJSON]{toVerification(v, nil)})
	return nil
}

// handleVerificationsByPhone handles GET
// /v2/verifications/by_phone_number/{phone_number} (D21). The mux has
// already unescaped the segment: %2B and a literal + both read "+", and a
// + is never a space.
func (s *Server) handleVerificationsByPhone(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
	phone := r.PathValue("phone_number")
	if err := checkPathPhone(phone); err != nil {
		return err
	}
	p, err := parsePage(r.URL.Query())
	if err != nil {
		return err
	}
	vs, total, err := s.svc.ListByPhone(r.Context(), acct, phone, p.offset(), p.size)
	if err != nil {
		return err
	}
	out := list[verificationJSON]{Data: make([]verificationJSON, len(vs)), Meta: p.meta(total)}
	for i, v := range vs {
		out.Data[i] = toVerification(v, nil)
	}
	writeJSON(w, http.StatusOK, &out)
	return nil
}

// checkPathPhone applies D2 to a phone number in the path.
func checkPathPhone(phone string) error {
	if err := service.CheckPhoneFormat(phone); err != nil {
		if e, ok := err.(*verifyd.Error); ok {
			return e.Param("phone_number")
		}
		return err
	}
	return nil
}

// checkResult is the answer of both check endpoints (§3.5).
type checkResult struct {
	PhoneNumber  string `json:"phone_number"`
	ResponseCode string `json:"response_code"`
}

func responseCode(accepted bool) string {
	if accepted {
		return "accepted"
	}
	return "rejected"
}

// checkByIDBody is a verify-by-ID request (§3.5, D16).
type checkByIDBody struct {
	Code   *string `json:"code"`
	Status *string `json:"status"`
}

// handleCheckByID handles POST /v2/verifications/{verification_id}/actions/verify.
// Which of code and status is required (exactly one, D16) is the
// service's decision.
func (s *Server) handleCheckByID(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
	id, err := checkID(r, "verification_id")
	if err != nil {
		return err
	}
	var b checkByIDBody
	if err := decode(r, &b); err != nil {
		return err
	}
	phone, ok, err := s.svc.CheckByID(r.Context(), acct, id, b.Code, b.Status)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, data[checkResult]{checkResult{phone, responseCode(ok)}})
	return nil
}

// checkByPhoneBody is a verify-by-phone request (§3.6, D18).
type checkByPhoneBody struct {
	Code            *string `json:"code"`
	VerifyProfileID *string `json:"verify_profile_id"`
}

// handleCheckByPhone handles POST
// /v2/verifications/by_phone_number/{phone_number}/actions/verify.
func (s *Server) handleCheckByPhone(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
	phone := r.PathValue("phone_number")
	if err := checkPathPhone(phone); err != nil {
		return err
	}
	var b checkByPhoneBody
	if err := decode(r, &b); err != nil {
		return err
	}
	if err := required(
		requiredField{"code", b.Code != nil},
		requiredField{"verify_profile_id", b.VerifyProfileID != nil},
	); err != nil {
		return err
	}
	ok, err := s.svc.CheckByPhone(r.Context(), acct, phone, *b.VerifyProfileID, *b.Code)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, data[checkResult]{checkResult{phone, responseCode(ok)}})
	return nil
}
