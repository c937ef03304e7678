package verifyd

import (
	"context"
	"time"
)

// Channel is a delivery channel of a verification.
type Channel string

// The channels of the Verify API.
const (
	SMS       Channel = "sms"
	Call      Channel = "call"
	Flashcall Channel = "flashcall"
	WhatsApp  Channel = "whatsapp"
)

// Channels lists every channel, in the order profiles show them.
var Channels = []Channel{SMS, Call, Flashcall, WhatsApp}

// Defaults for channel settings (API.md D24).
const (
	DefaultCodeLength  = 5
	DefaultTimeoutSecs = 300
	DefaultLanguage    = "en-US"
)

// Profile is a Verify profile. Channels holds, per channel, exactly the keys a
// client set (known and unknown ones, D27), as decoded JSON values; defaults
// are filled in on read by Settings and by the API layer.
type Profile struct {
	ID                     string
	AccountID              string
	Name                   string
	WebhookURL             string // "" = none
	WebhookFailoverURL     string // "" = none
	Language               string // "" = DefaultLanguage
	DailySpendLimit        *float64
	DailySpendLimitEnabled bool
	Channels               map[Channel]map[string]any
	CreatedAt              time.Time
	UpdatedAt              time.Time
}

// ChannelSettings are the typed settings of one channel, defaults applied.
type ChannelSettings struct {
	CodeLength              int
	TimeoutSecs             int
	TemplateID              string
	AppName                 string
	AlphaSender             string
	WhitelistedDestinations []string // nil: the operator default applies
}

// Settings returns the settings of channel ch with defaults applied.
func (p *Profile) Settings(ch Channel) ChannelSettings {
	s := ChannelSettings{CodeLength: DefaultCodeLength, TimeoutSecs: DefaultTimeoutSecs}
	m := p.Channels[ch]
	if n, ok := intValue(m["code_length"]); ok {
		s.CodeLength = n
	}
	if n, ok := intValue(m["default_timeout_secs"]); ok {
		s.TimeoutSecs = n
	}
	if n, ok := intValue(m["default_verification_timeout_secs"]); ok {
		s.TimeoutSecs = n
	}
	s.TemplateID, _ = m["messaging_template_id"].(string)
	s.AppName, _ = m["app_name"].(string)
	s.AlphaSender, _ = m["alpha_sender"].(string)
	if list, ok := m["whitelisted_destinations"].([]any); ok {
		s.WhitelistedDestinations = []string{}
		for _, x := range list {
			if c, ok := x.(string); ok {
				s.WhitelistedDestinations = append(s.WhitelistedDestinations, c)
			}
		}
	}
	return s
}

// LanguageOrDefault returns the profile's language tag or DefaultLanguage.
func (p *Profile) LanguageOrDefault() string {
	if p.Language == "" {
		return DefaultLanguage
	}
	return p.Language
}

func intValue(v any) (int, bool) {
	switch n := v.(type) {
	case float64:
		if n == float64(int(n)) {
			return int(n), true
		}
	case int:
		return n, true
	case int64:
		return int(n), true
	}
	return 0, false
}

// Template is an account's message template: text with {{code}} and
// optionally {{app_name}}.
type Template struct {
	ID        string
	AccountID string
	Text      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ProfileFilter selects a page of profiles.
type ProfileFilter struct {
	Name   *string // exact, case-sensitive
	Offset int
	Limit  int
}

// ProfileStore persists profiles and templates. Every method is scoped to an
// account: an ID of another account is ENOTFOUND.
type ProfileStore interface {
	CreateProfile(ctx context.Context, p *Profile) error
	// GetProfile returns a live (not deleted) profile or ENOTFOUND.
	GetProfile(ctx context.Context, accountID, id string) (*Profile, error)
	// ListProfiles returns live profiles, oldest first (created_at, id), and
	// the total count matching the filter.
	ListProfiles(ctx context.Context, accountID string, f ProfileFilter) ([]*Profile, int, error)
	// UpdateProfile replaces every field of a live profile but ID, AccountID
	// and CreatedAt; ENOTFOUND if there is none.
	UpdateProfile(ctx context.Context, p *Profile) error
	// DeleteProfile marks the profile deleted and, in the same transaction,
	// turns its pending verifications expired with reason profile_deleted
	// (one verify.completed event each). Returns the deleted profile.
	DeleteProfile(ctx context.Context, accountID, id string, now time.Time) (*Profile, error)

	CreateTemplate(ctx context.Context, t *Template) error
	GetTemplate(ctx context.Context, accountID, id string) (*Template, error)
	// ListTemplates returns the account's templates, oldest first.
	ListTemplates(ctx context.Context, accountID string) ([]*Template, error)
	// UpdateTemplate replaces Text and UpdatedAt; ENOTFOUND if unknown.
	UpdateTemplate(ctx context.Context, t *Template) error
}
