package api

import (
	"net/http"

	"github.com/verifyd/verifyd"
)

// templateJSON is a message template: id and text only, no record_type,
// no timestamps (§5).
type templateJSON struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

func toTemplate(t *verifyd.Template) templateJSON { return templateJSON{ID: t.ID, Text: t.Text} }

// templateBody is a create or update request; the service reports a
// missing text (EREQUIRED) and checks its content (D29).
type templateBody struct {
	Text *string `json:"text"`
}

// handleTemplateList handles GET /v2/verify_profiles/templates: the
// account's templates, no meta (§2.4).
func (s *Server) handleTemplateList(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
	ts, err := s.svc.ListTemplates(r.Context(), acct)
	if err != nil {
		return err
	}
	out := data[[]templateJSON]{Data: make([]templateJSON, len(ts))}
	for i, t := range ts {
		out.Data[i] = toTemplate(t)
	}
	writeJSON(w, http.StatusOK, &out)
	return nil
}

// handleTemplateCreate handles POST /v2/verify_profiles/templates.
func (s *Server) handleTemplateCreate(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
	var b templateBody
	if err := decode(r, &b); err != nil {
		return err
	}
	t, err := s.svc.CreateTemplate(r.Context(), acct, b.Text)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, data[templateJSON]{toTemplate(t)})
	return nil
}

// handleTemplateUpdate handles PATCH /v2/verify_profiles/templates/{template_id}.
func (s *Server) handleTemplateUpdate(w http.ResponseWriter, r *http.Request, acct *verifyd.Account) error {
	id, err := checkID(r, "template_id")
	if err != nil {
		return err
	}
	var b templateBody
	if err := decode(r, &b); err != nil {
		return err
	}
	t, err := s.svc.UpdateTemplate(r.Context(), acct, id, b.Text)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, data[templateJSON]{toTemplate(t)})
	return nil
}
