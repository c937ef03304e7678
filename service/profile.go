package service

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"strings"

	"github.com/verifyd/verifyd"
)

var (
	reAppName     = regexp.MustCompile(`^[A-Za-z0-9 -]{1,30}$`)
	reAlphaSender = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
	reCountry     = regexp.MustCompile(`^[A-Z]{2}$`)
	reLanguage    = regexp.MustCompile(`^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$`)
)

// CreateProfile creates a profile from a decoded JSON body (§4.4).
func (s *Service) CreateProfile(ctx context.Context, acct *verifyd.Account, body map[string]any) (*verifyd.Profile, error) {
	if _, ok := body["name"]; !ok {
		return nil, (&verifyd.Error{Code: verifyd.EREQUIRED, Message: "name is required."}).At("/name")
	}
	now := s.opts.Now().UTC()
	p := &verifyd.Profile{ID: verifyd.NewID(), AccountID: acct.ID, Channels: map[verifyd.Channel]map[string]any{},
		CreatedAt: now, UpdatedAt: now}
	if err := s.applyProfile(ctx, p, body); err != nil {
		return nil, err
	}
	return p, s.store.CreateProfile(ctx, p)
}

// GetProfile returns a live profile of the account.
func (s *Service) GetProfile(ctx context.Context, acct *verifyd.Account, id string) (*verifyd.Profile, error) {
	return s.store.GetProfile(ctx, acct.ID, id)
}

// ListProfiles returns a page of the account's profiles, oldest first.
func (s *Service) ListProfiles(ctx context.Context, acct *verifyd.Account, name *string, offset, limit int) ([]*verifyd.Profile, int, error) {
	return s.store.ListProfiles(ctx, acct.ID, verifyd.ProfileFilter{Name: name, Offset: offset, Limit: limit})
}

// UpdateProfile applies a JSON Merge Patch (RFC 7396, D25) to a profile:
// present keys replace, null resets to the default, absent keys are kept,
// channel objects merge key by key, arrays are replaced whole.
func (s *Service) UpdateProfile(ctx context.Context, acct *verifyd.Account, id string, patch map[string]any) (*verifyd.Profile, error) {
	p, err := s.store.GetProfile(ctx, acct.ID, id)
	if err != nil {
		return nil, err
	}
	if err := s.applyProfile(ctx, p, patch); err != nil {
		return nil, err
	}
	p.UpdatedAt = s.opts.Now().UTC()
	defer s.profiles.remove(acct.ID + "/" + id)
	return p, s.store.UpdateProfile(ctx, p)
}

// DeleteProfile deletes a profile; its pending verifications expire (D30).
func (s *Service) DeleteProfile(ctx context.Context, acct *verifyd.Account, id string) (*verifyd.Profile, error) {
	defer s.profiles.remove(acct.ID + "/" + id)
	return s.store.DeleteProfile(ctx, acct.ID, id, s.opts.Now().UTC())
}

// applyProfile validates body and merges it into p.
func (s *Service) applyProfile(ctx context.Context, p *verifyd.Profile, body map[string]any) error {
	for key, val := range body {
		ptr := "/" + key
		switch key {
		case "name":
			name, ok := val.(string)
			if !ok || strings.TrimSpace(name) == "" || len(name) > 255 {
				return invalid(ptr, "name must be a non-empty string of at most 255 characters.")
			}
			p.Name = name
		case "webhook_url", "webhook_failover_url":
			u, err := webhookURL(ptr, val)
			if err != nil {
				return err
			}
			if key == "webhook_url" {
				p.WebhookURL = u
			} else {
				p.WebhookFailoverURL = u
			}
		case "language":
			switch l := val.(type) {
			case nil:
				p.Language = ""
			case string:
				if !reLanguage.MatchString(l) {
					return invalid(ptr, "language must be a BCP 47 language tag such as en-US.")
				}
				p.Language = l
			default:
				return invalid(ptr, "language must be a string.")
			}
		case "daily_spend_limit":
			switch n := val.(type) {
			case nil:
				p.DailySpendLimit = nil
			case float64:
				if n < 0 {
					return invalid(ptr, "daily_spend_limit must be at least 0.")
				}
				p.DailySpendLimit = &n
			case string:
				var f float64
				if _, err := fmt.Sscanf(n, "%g", &f); err != nil || f < 0 {
					return invalid(ptr, "daily_spend_limit must be a number of at least 0.")
				}
				p.DailySpendLimit = &f
			default:
				return invalid(ptr, "daily_spend_limit must be a number.")
			}
		case "daily_spend_limit_enabled":
			switch b := val.(type) {
			case nil:
				p.DailySpendLimitEnabled = false
			case bool:
				p.DailySpendLimitEnabled = b
			default:
				return invalid(ptr, "daily_spend_limit_enabled must be a boolean.")
			}
		case "sms", "call", "flashcall", "whatsapp":
			ch := verifyd.Channel(key)
			if val == nil {
				delete(p.Channels, ch)
				continue
			}
			obj, ok := val.(map[string]any)
			if !ok {
				return invalid(ptr, "%s must be an object.", key)
			}
			merged := maps.Clone(p.Channels[ch])
			if merged == nil {
				merged = map[string]any{}
			}
			for k, v := range obj {
				if v == nil {
					delete(merged, k)
					continue
				}
				if err := s.checkChannelKey(ctx, p.AccountID, ptr+"/"+k, k, v); err != nil {
					return err
				}
				merged[k] = v
			}
			if p.Channels == nil {
				p.Channels = map[verifyd.Channel]map[string]any{}
			}
			p.Channels[ch] = merged
		}
	}
	return nil
}

func webhookURL(ptr string, val any) (string, error) {
	if val == nil {
		return "", nil
	}
	bad := &verifyd.Error{Code: verifyd.EURL, Message: "Webhook URLs must be http(s) URLs of at most 2000 characters.", Pointer: ptr}
	s, ok := val.(string)
	if !ok || len(s) > 2000 {
		return "", bad
	}
	if s == "" {
		return "", nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", bad
	}
	return s, nil
}

// checkChannelKey validates one known key of a channel object; unknown keys
// are stored and echoed (D27).
func (s *Service) checkChannelKey(ctx context.Context, accountID, ptr, key string, v any) error {
	switch key {
	case "code_length":
		n, ok := v.(float64)
		if !ok || n != float64(int(n)) || n < 4 || n > 10 {
			return invalid(ptr, "code_length must be an integer from 4 to 10.")
		}
	case "default_verification_timeout_secs", "default_timeout_secs":
		n, ok := v.(float64)
		if !ok || n != float64(int(n)) || n < 30 || n > 86400 {
			return invalid(ptr, "%s must be an integer from 30 to 86400.", key)
		}
	case "app_name":
		if str, ok := v.(string); !ok || !reAppName.MatchString(str) {
			return invalid(ptr, "app_name must be 1 to 30 letters, digits, spaces or dashes.")
		}
	case "alpha_sender":
		if str, ok := v.(string); !ok || !reAlphaSender.MatchString(str) {
			return invalid(ptr, "alpha_sender must be 1 to 11 letters, digits or spaces.")
		}
	case "messaging_template_id":
		id, ok := v.(string)
		if !ok {
			return invalid(ptr, "messaging_template_id must be a string.")
		}
		missing := &verifyd.Error{Code: verifyd.EREFERENCE, Message: "The message template does not exist.", Pointer: ptr}
		if !verifyd.ValidID(id) {
			return missing
		}
		if _, err := s.store.GetTemplate(ctx, accountID, id); verifyd.ErrorCode(err) == verifyd.ENOTFOUND {
			return missing
		} else if err != nil {
			return err
		}
	case "whitelisted_destinations":
		list, ok := v.([]any)
		if !ok {
			return invalid(ptr, "whitelisted_destinations must be an array of ISO 3166-1 alpha-2 codes or \"*\".")
		}
		for i, x := range list {
			c, ok := x.(string)
			if !ok || (c != "*" && !reCountry.MatchString(c)) {
				return invalid(fmt.Sprintf("%s/%d", ptr, i), "Each destination must be an ISO 3166-1 alpha-2 code such as GB, or \"*\".")
			}
		}
	case "sender_phone_number", "template_id", "waba_id":
		if _, ok := v.(string); !ok {
			return invalid(ptr, "%s must be a string.", key)
		}
	}
	return nil
}

// CreateTemplate creates a message template of the account (D29).
func (s *Service) CreateTemplate(ctx context.Context, acct *verifyd.Account, text *string) (*verifyd.Template, error) {
	if err := checkTemplateText(text); err != nil {
		return nil, err
	}
	now := s.opts.Now().UTC()
	t := &verifyd.Template{ID: verifyd.NewID(), AccountID: acct.ID, Text: *text, CreatedAt: now, UpdatedAt: now}
	return t, s.store.CreateTemplate(ctx, t)
}

// ListTemplates returns the account's templates.
func (s *Service) ListTemplates(ctx context.Context, acct *verifyd.Account) ([]*verifyd.Template, error) {
	return s.store.ListTemplates(ctx, acct.ID)
}

// UpdateTemplate replaces a template's text; every profile using it follows.
func (s *Service) UpdateTemplate(ctx context.Context, acct *verifyd.Account, id string, text *string) (*verifyd.Template, error) {
	if err := checkTemplateText(text); err != nil {
		return nil, err
	}
	t, err := s.store.GetTemplate(ctx, acct.ID, id)
	if err != nil {
		return nil, err
	}
	t.Text, t.UpdatedAt = *text, s.opts.Now().UTC()
	return t, s.store.UpdateTemplate(ctx, t)
}

var rePlaceholder = regexp.MustCompile(`\{\{\s*([^}]*?)\s*\}\}`)

func checkTemplateText(text *string) error {
	if text == nil {
		return (&verifyd.Error{Code: verifyd.EREQUIRED, Message: "text is required."}).At("/text")
	}
	t := *text
	if n := len([]rune(t)); n < 1 || n > 500 {
		return invalid("/text", "text must be 1 to 500 characters.")
	}
	hasCode := false
	for _, m := range rePlaceholder.FindAllStringSubmatch(t, -1) {
		switch m[1] {
		case "code":
			hasCode = true
		case "app_name":
		default:
			return invalid("/text", "Unknown placeholder {{%s}}: only {{code}} and {{app_name}} are allowed.", m[1])
		}
	}
	if !hasCode {
		return invalid("/text", "text must contain {{code}}.")
	}
	return nil
}
