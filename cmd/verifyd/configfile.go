package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/sip"
	"github.com/verifyd/verifyd/smpp"
	"github.com/verifyd/verifyd/telnyx"
	"github.com/verifyd/verifyd/twilio"
)

// fileConfig is the --config file: the senders verifyd delivers through and
// the routes that choose among them (README "Delivering to carriers").
type fileConfig struct {
	Senders []senderFile `yaml:"senders"`
	Routes  []routeFile  `yaml:"routes"`
	Router  routerFile   `yaml:"router"`

	path string // for error messages
}

// senderFile is one sender: a name, a type and that type's block.
type senderFile struct {
	Name    string       `yaml:"name"`
	Type    string       `yaml:"type"`
	Console *consoleFile `yaml:"console"`
	SMPP    *smppFile    `yaml:"smpp"`
	Twilio  *twilioFile  `yaml:"twilio"`
	Telnyx  *telnyxFile  `yaml:"telnyx"`
	SIP     *sipFile     `yaml:"sip"`
}

// Sender types.
const (
	typeConsole = "console"
	typeSMPP    = "smpp"
	typeTwilio  = "twilio"
	typeTelnyx  = "telnyx"
	typeSIP     = "sip"
)

type consoleFile struct {
	// Out is the file messages are appended to; default --console-out.
	Out string `yaml:"out"`
}

type smppFile struct {
	Address           string        `yaml:"address"`
	SystemID          string        `yaml:"system_id"`
	Password          secret        `yaml:"password"`
	SystemType        string        `yaml:"system_type"`
	SourceAddr        string        `yaml:"source_addr"`
	BindMode          string        `yaml:"bind_mode"`
	Binds             int           `yaml:"binds"`
	Window            int           `yaml:"window"`
	TPS               float64       `yaml:"tps"`
	TLS               *tlsFile      `yaml:"tls"`
	IDForm            string        `yaml:"id_form"`
	UseMessagePayload bool          `yaml:"use_message_payload"`
	EnquireInterval   time.Duration `yaml:"enquire_interval"`
	ResponseTimeout   time.Duration `yaml:"response_timeout"`
	ReconnectMin      time.Duration `yaml:"reconnect_min"`
	ReconnectMax      time.Duration `yaml:"reconnect_max"`
}

type twilioFile struct {
	AccountSID          string        `yaml:"account_sid"`
	AuthToken           secret        `yaml:"auth_token"`
	From                string        `yaml:"from"`
	MessagingServiceSID string        `yaml:"messaging_service_sid"`
	UseAlphaSender      bool          `yaml:"use_alpha_sender"`
	CallbackURL         string        `yaml:"callback_url"`
	BaseURL             string        `yaml:"base_url"`
	Timeout             time.Duration `yaml:"timeout"`
}

type telnyxFile struct {
	APIKey             secret        `yaml:"api_key"`
	From               string        `yaml:"from"`
	MessagingProfileID string        `yaml:"messaging_profile_id"`
	UseAlphaSender     bool          `yaml:"use_alpha_sender"`
	WebhookURL         string        `yaml:"webhook_url"`
	PublicKey          secret        `yaml:"public_key"`
	BaseURL            string        `yaml:"base_url"`
	Timeout            time.Duration `yaml:"timeout"`
	Tolerance          time.Duration `yaml:"tolerance"`
}

type sipFile struct {
	Trunk            string        `yaml:"trunk"`
	Transport        string        `yaml:"transport"`
	TLS              *tlsFile      `yaml:"tls"`
	Username         string        `yaml:"username"`
	Password         secret        `yaml:"password"`
	Domain           string        `yaml:"domain"`
	StripPlus        bool          `yaml:"strip_plus"`
	Listen           string        `yaml:"listen"`
	ExternalHost     string        `yaml:"external_host"`
	CallerIDs        []string      `yaml:"caller_ids"`
	FlashPrefix      string        `yaml:"flash_prefix"`
	FlashDigits      int           `yaml:"flash_digits"`
	RingTimeout      time.Duration `yaml:"ring_timeout"`
	CallTimeout      time.Duration `yaml:"call_timeout"`
	FlashRingTimeout time.Duration `yaml:"flash_ring_timeout"`
	FlashHold        time.Duration `yaml:"flash_hold"`
	MaxCalls         int           `yaml:"max_calls"`
	Codecs           []string      `yaml:"codecs"`
	PromptsDir       string        `yaml:"prompts_dir"`
	JournalDir       string        `yaml:"journal_dir"`
}

// tlsFile turns TLS on for an SMPP or SIP connection.
type tlsFile struct {
	ServerName         string `yaml:"server_name"`
	CAFile             string `yaml:"ca_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

type routeFile struct {
	Channel  string   `yaml:"channel"`
	Prefixes []string `yaml:"prefixes"`
	Senders  []string `yaml:"senders"`
}

type routerFile struct {
	FailureThreshold int           `yaml:"failure_threshold"`
	Cooldown         time.Duration `yaml:"cooldown"`
	AttemptTimeout   time.Duration `yaml:"attempt_timeout"`
}

// secret is a credential: a literal, or "${NAME}" (the whole value) for
// the environment variable NAME, which must be set and not empty. Its
// String never shows the value.
type secret struct {
	raw, value string
}

func (s *secret) UnmarshalYAML(n *yaml.Node) error { return n.Decode(&s.raw) }

// String keeps secrets out of logs and error messages.
func (s secret) String() string { return "[redacted]" }

var envRef = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

// resolve sets the value from the literal or the environment.
func (s *secret) resolve(getenv func(string) string) error {
	if m := envRef.FindStringSubmatch(s.raw); m != nil {
		v := getenv(m[1])
		if v == "" {
			return fmt.Errorf("environment variable %s (referenced as ${%s}) is not set", m[1], m[1])
		}
		s.value = v
		return nil
	}
	if strings.Contains(s.raw, "${") {
		return errors.New(`an environment reference must be the whole value, "${NAME}"`)
	}
	s.value = s.raw
	return nil
}

// configError is a problem of the config file: the file, the field and
// what is wrong.
type configError struct {
	file, field, msg string
}

func (e *configError) Error() string { return e.file + ": " + e.field + ": " + e.msg }

var senderName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// channelTypes are the sender types each channel may route to.
var channelTypes = map[verifyd.Channel][]string{
	verifyd.SMS:       {typeConsole, typeSMPP, typeTwilio, typeTelnyx},
	verifyd.Call:      {typeConsole, typeSIP},
	verifyd.Flashcall: {typeConsole, typeSIP},
}

// loadConfigFile reads, decodes and validates the config file at path,
// resolving environment references with getenv. Unknown fields are errors.
func loadConfigFile(path string, getenv func(string) string) (*fileConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	fc := &fileConfig{path: path}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(fc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &configError{path, "senders", "the file is empty"}
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := fc.validate(getenv); err != nil {
		return nil, err
	}
	return fc, nil
}

// validate checks the file and resolves its secrets.
func (fc *fileConfig) validate(getenv func(string) string) error {
	bad := func(field, format string, args ...any) error {
		return &configError{fc.path, field, fmt.Sprintf(format, args...)}
	}
	if len(fc.Senders) == 0 {
		return bad("senders", "at least one sender is required")
	}
	types := map[string]string{}
	for i := range fc.Senders {
		s := &fc.Senders[i]
		at := fmt.Sprintf("senders[%d]", i)
		if !senderName.MatchString(s.Name) {
			return bad(at+".name", "%q must be 1-63 lower-case letters, digits, '-' or '_' (it appears in callback paths and metrics)", s.Name)
		}
		if _, dup := types[s.Name]; dup {
			return bad(at+".name", "sender %q is declared twice", s.Name)
		}
		at = fmt.Sprintf("senders[%d] (%s)", i, s.Name)
		blocks := map[string]bool{typeConsole: s.Console != nil, typeSMPP: s.SMPP != nil, typeTwilio: s.Twilio != nil,
			typeTelnyx: s.Telnyx != nil, typeSIP: s.SIP != nil}
		if _, ok := blocks[s.Type]; !ok {
			return bad(at+".type", "%q is not console, smpp, twilio, telnyx or sip", s.Type)
		}
		for typ, set := range blocks {
			if set && typ != s.Type {
				return bad(at+"."+typ, "a %s block on a sender of type %s", typ, s.Type)
			}
		}
		types[s.Name] = s.Type
		if err := s.check(getenv, func(field, format string, args ...any) error {
			return bad(at+"."+field, format, args...)
		}); err != nil {
			return err
		}
	}

	if len(fc.Routes) == 0 {
		return bad("routes", "at least one route is required (channels without a route answer V0009)")
	}
	var flashPrefix string
	flashDigits := 0
	for i, r := range fc.Routes {
		at := fmt.Sprintf("routes[%d]", i)
		allowed, ok := channelTypes[verifyd.Channel(r.Channel)]
		if !ok {
			return bad(at+".channel", "%q is not sms, call or flashcall", r.Channel)
		}
		for j, p := range r.Prefixes {
			if p != "*" && strings.Trim(strings.TrimPrefix(p, "+"), "0123456789") != "" {
				return bad(fmt.Sprintf("%s.prefixes[%d]", at, j), "%q is not E.164 digits (or *)", p)
			}
		}
		if len(r.Senders) == 0 {
			return bad(at+".senders", "a route needs at least one sender")
		}
		for j, name := range r.Senders {
			field := fmt.Sprintf("%s.senders[%d]", at, j)
			typ, ok := types[name]
			if !ok {
				return bad(field, "no sender is named %q", name)
			}
			if !slices.Contains(allowed, typ) {
				return bad(field, "sender %q is of type %s, which cannot carry %s (use %s)", name, typ, r.Channel,
					strings.Join(allowed, ", "))
			}
			if r.Channel == string(verifyd.Flashcall) && typ == typeSIP {
				s := fc.sender(name).SIP
				if s.FlashPrefix == "" {
					return bad(field, "sip sender %q has no flash_prefix: it cannot place flash calls", name)
				}
				digits := cmpOr(s.FlashDigits, sip.DefaultConfig().FlashDigits)
				if flashPrefix != "" && (s.FlashPrefix != flashPrefix || digits != flashDigits) {
					return bad(field, "every sip sender of the flashcall routes must share flash_prefix and flash_digits (the service draws one caller-ID range)")
				}
				flashPrefix, flashDigits = s.FlashPrefix, digits
			}
		}
	}
	if fc.Router.FailureThreshold < 0 || fc.Router.Cooldown < 0 || fc.Router.AttemptTimeout < 0 {
		return bad("router", "failure_threshold, cooldown and attempt_timeout must not be negative")
	}
	return nil
}

func (fc *fileConfig) sender(name string) *senderFile {
	for i := range fc.Senders {
		if fc.Senders[i].Name == name {
			return &fc.Senders[i]
		}
	}
	return nil
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// check validates one sender's block and resolves its secrets; bad names
// the field (relative to the sender).
func (s *senderFile) check(getenv func(string) string, bad func(field, format string, args ...any) error) error {
	required := func(field, v string) error {
		if strings.TrimSpace(v) == "" {
			return bad(field, "is required")
		}
		return nil
	}
	resolve := func(field string, sec *secret) error {
		if err := sec.resolve(getenv); err != nil {
			return bad(field, "%v", err)
		}
		return nil
	}
	switch s.Type {
	case typeConsole:
		if s.Console == nil {
			s.Console = &consoleFile{}
		}
	case typeSMPP:
		c := s.SMPP
		if c == nil {
			return bad("smpp", "type smpp needs an smpp block (address, system_id, password, ...)")
		}
		if err := errors.Join(required("smpp.address", c.Address), required("smpp.system_id", c.SystemID),
			resolve("smpp.password", &c.Password)); err != nil {
			return err
		}
		if c.TLS != nil {
			if _, err := c.TLS.config(""); err != nil {
				return bad("smpp.tls", "%v", err)
			}
		}
		if err := c.config(s.Name, nil).Validate(); err != nil {
			return bad("smpp", "%v", err)
		}
	case typeTwilio:
		c := s.Twilio
		if c == nil {
			return bad("twilio", "type twilio needs a twilio block (account_sid, auth_token, from, ...)")
		}
		if err := errors.Join(required("twilio.account_sid", c.AccountSID), resolve("twilio.auth_token", &c.AuthToken)); err != nil {
			return err
		}
		if c.From == "" && c.MessagingServiceSID == "" {
			return bad("twilio.from", "a from number or a messaging_service_sid is required")
		}
		tc := c.config(s.Name)
		if err := tc.Validate(); err != nil {
			return bad("twilio", "%v", err)
		}
	case typeTelnyx:
		c := s.Telnyx
		if c == nil {
			return bad("telnyx", "type telnyx needs a telnyx block (api_key, from, public_key, ...)")
		}
		if err := errors.Join(resolve("telnyx.api_key", &c.APIKey), resolve("telnyx.public_key", &c.PublicKey)); err != nil {
			return err
		}
		if c.APIKey.value == "" {
			return bad("telnyx.api_key", "is required")
		}
		if c.From == "" && c.MessagingProfileID == "" {
			return bad("telnyx.from", "a from number or a messaging_profile_id is required")
		}
		if c.WebhookURL != "" && c.PublicKey.value == "" {
			return bad("telnyx.public_key", "is required with webhook_url (webhooks are verified with it)")
		}
		tc := c.config(s.Name)
		if err := tc.Validate(); err != nil {
			return bad("telnyx", "%v", err)
		}
	case typeSIP:
		c := s.SIP
		if c == nil {
			return bad("sip", "type sip needs a sip block (trunk, username, password, journal_dir, ...)")
		}
		if err := errors.Join(required("sip.trunk", c.Trunk), resolve("sip.password", &c.Password)); err != nil {
			return err
		}
		if c.TLS != nil {
			if _, err := c.TLS.config(""); err != nil {
				return bad("sip.tls", "%v", err)
			}
		}
		// journal_dir may be defaulted later (beside an SQLite database).
		sc, _ := c.config(s.Name, "-")
		if err := sc.Validate(); err != nil {
			return bad("sip", "%v", err)
		}
	}
	return nil
}

// config returns the smpp.Config of the block; sink-independent.
func (c *smppFile) config(name string, tlsConf *tls.Config) smpp.Config {
	return smpp.Config{
		Name: name, Addr: c.Address, SystemID: c.SystemID, Password: c.Password.value, SystemType: c.SystemType,
		BindMode: c.BindMode, TLS: tlsConf, SourceAddr: c.SourceAddr, TPS: c.TPS, Window: c.Window, Binds: c.Binds,
		EnquireInterval: c.EnquireInterval, ResponseTimeout: c.ResponseTimeout, ReconnectMin: c.ReconnectMin,
		ReconnectMax: c.ReconnectMax, UseMessagePayload: c.UseMessagePayload, IDForm: smpp.IDForm(c.IDForm),
	}
}

func (c *twilioFile) config(name string) twilio.Config {
	return twilio.Config{
		Name: name, BaseURL: c.BaseURL, AccountSID: c.AccountSID, AuthToken: c.AuthToken.value, From: c.From,
		MessagingServiceSID: c.MessagingServiceSID, UseAlphaSender: c.UseAlphaSender, CallbackURL: c.CallbackURL,
		Timeout: c.Timeout,
	}
}

func (c *telnyxFile) config(name string) telnyx.Config {
	return telnyx.Config{
		Name: name, BaseURL: c.BaseURL, APIKey: c.APIKey.value, From: c.From, MessagingProfileID: c.MessagingProfileID,
		UseAlphaSender: c.UseAlphaSender, WebhookURL: c.WebhookURL, PublicKey: c.PublicKey.value,
		Tolerance: c.Tolerance, Timeout: c.Timeout,
	}
}

// config returns the sip.Config of the block with journalDir as the
// default journal directory.
func (c *sipFile) config(name, journalDir string) (sip.Config, error) {
	sc := sip.DefaultConfig()
	sc.Name, sc.Trunk, sc.Username, sc.Password, sc.Domain = name, c.Trunk, c.Username, c.Password.value, c.Domain
	sc.StripPlus, sc.ExternalHost, sc.CallerIDs, sc.FlashPrefix = c.StripPlus, c.ExternalHost, c.CallerIDs, c.FlashPrefix
	sc.PromptsDir = c.PromptsDir
	set := func(dst *time.Duration, v time.Duration) {
		if v != 0 {
			*dst = v
		}
	}
	set(&sc.RingTimeout, c.RingTimeout)
	set(&sc.CallTimeout, c.CallTimeout)
	set(&sc.FlashRingTimeout, c.FlashRingTimeout)
	sc.FlashHold = c.FlashHold
	if c.Transport != "" {
		sc.Transport = c.Transport
	}
	if c.Listen != "" {
		sc.Listen = c.Listen
	}
	sc.FlashDigits = cmpOr(c.FlashDigits, sc.FlashDigits)
	sc.MaxCalls = cmpOr(c.MaxCalls, sc.MaxCalls)
	if len(c.Codecs) > 0 {
		sc.Codecs = c.Codecs
	}
	sc.JournalDir = c.JournalDir
	if sc.JournalDir == "" {
		sc.JournalDir = journalDir
	}
	if c.TLS != nil {
		host := c.Trunk
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			host = host[:i]
		}
		t, err := c.TLS.config(host)
		if err != nil {
			return sc, err
		}
		sc.TLS = t
	}
	return sc, nil
}

// config builds the tls.Config; serverName is the default server name.
func (t *tlsFile) config(serverName string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.ServerName != "" {
		c.ServerName = t.ServerName
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", t.CAFile)
		}
		c.RootCAs = pool
	}
	return c, nil
}
