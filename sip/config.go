package sip

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Config describes one SIP trunk and how calls over it are placed. Build it
// with DefaultConfig in cmd, fill it from flags or a file, and check it with
// Validate (New does too).
type Config struct {
	// Name identifies the trunk in SendResult.Sender and logs (default "sip").
	Name string
	// Trunk is the registrar/proxy every INVITE goes to, host:port.
	Trunk string
	// Transport is udp, tcp or tls (default udp).
	Transport string
	// TLS configures the tls transport; nil uses the system roots with the
	// trunk host as server name.
	TLS *tls.Config
	// Username and Password answer the trunk's digest challenges (401 and
	// 407). The password is never logged.
	Username string
	Password string
	// Domain is the host part of the To and From URIs (default: the trunk
	// host).
	Domain string
	// StripPlus sends the callee number without its leading '+' (some
	// trunks want bare digits).
	StripPlus bool

	// Listen is the local address SIP binds to, host:port (default
	// 127.0.0.1:0, an ephemeral port on loopback). RTP binds to the same host
	// on an ephemeral port.
	Listen string
	// ExternalHost, when set, is the address put in Via, Contact and SDP
	// instead of the bind address (behind NAT).
	ExternalHost string

	// CallerIDs are the numbers a voice call presents, used in turn; empty
	// leaves From to the username.
	CallerIDs []string
	// FlashPrefix is the caller-ID range flash calls present (E.164 prefix
	// the carrier lets us use, e.g. "+4930555"). cmd passes it and FlashDigits
	// to the service, which draws every flash-call number under it (D19). A
	// flash call whose caller ID is outside the prefix is refused; with no
	// prefix the trunk refuses flash calls.
	FlashPrefix string
	// FlashDigits is how many trailing caller-ID digits form the code (D19,
	// default 4).
	FlashDigits int

	// RingTimeout bounds the wait for an answer; then the INVITE is
	// cancelled (default 30 s).
	RingTimeout time.Duration
	// CallTimeout bounds a whole voice call, from INVITE to BYE (default
	// 60 s). The delivery worker's send timeout must be at least this long
	// for the call channel.
	CallTimeout time.Duration
	// FlashRingTimeout bounds a flash call that gets no 180/183 (default
	// 15 s).
	FlashRingTimeout time.Duration
	// FlashHold lets a flash call ring this long after the first 180/183
	// before the CANCEL (default 0: cancel at once). Some networks need a
	// second or two for the number to reach the handset.
	FlashHold time.Duration
	// MaxCalls bounds concurrent calls on the trunk (default 4). Send waits
	// for a free slot while its context allows.
	MaxCalls int
	// Codecs offered, in order of preference: PCMU, PCMA (default both).
	// telephone-event/8000 is always offered for DTMF.
	Codecs []string

	// PromptsDir, when set, replaces the embedded prompts with the
	// operator's recordings: <dir>/<lang>/intro.wav and 0.wav … 9.wav, 8 kHz
	// mono 16-bit PCM WAV. A language with a missing file is skipped.
	PromptsDir string
	// JournalDir holds the call journal (journal.log): one record fsynced
	// before every INVITE, so a call is never placed twice for one delivery
	// job, even across restarts. Required.
	JournalDir string
	// JournalRetention is how long journal records are kept; older ones are
	// dropped when the sender opens (default 7 days).
	JournalRetention time.Duration
}

// DefaultConfig returns a configuration with every default filled in but
// no trunk, credentials or journal directory.
func DefaultConfig() Config {
	return Config{
		Name:             "sip",
		Transport:        "udp",
		Listen:           "127.0.0.1:0",
		FlashDigits:      4,
		RingTimeout:      30 * time.Second,
		CallTimeout:      60 * time.Second,
		FlashRingTimeout: 15 * time.Second,
		MaxCalls:         4,
		Codecs:           []string{"PCMU", "PCMA"},
		JournalRetention: 7 * 24 * time.Hour,
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.Name = cmp.Or(c.Name, d.Name)
	c.Transport = strings.ToLower(cmp.Or(c.Transport, d.Transport))
	c.Listen = cmp.Or(c.Listen, d.Listen)
	c.FlashDigits = cmp.Or(c.FlashDigits, d.FlashDigits)
	c.RingTimeout = cmp.Or(c.RingTimeout, d.RingTimeout)
	c.CallTimeout = cmp.Or(c.CallTimeout, d.CallTimeout)
	c.FlashRingTimeout = cmp.Or(c.FlashRingTimeout, d.FlashRingTimeout)
	c.MaxCalls = cmp.Or(c.MaxCalls, d.MaxCalls)
	c.JournalRetention = cmp.Or(c.JournalRetention, d.JournalRetention)
	if len(c.Codecs) == 0 {
		c.Codecs = d.Codecs
	}
	if c.Domain == "" {
		c.Domain, _, _ = net.SplitHostPort(c.Trunk)
	}
	return c
}

// Validate reports the first problem of c with its defaults applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if _, port, err := net.SplitHostPort(c.Trunk); err != nil || port == "" {
		errs = append(errs, fmt.Errorf("sip %s: trunk %q must be host:port", c.Name, c.Trunk))
	} else if _, err := strconv.Atoi(port); err != nil {
		errs = append(errs, fmt.Errorf("sip %s: trunk port %q is not a number", c.Name, port))
	}
	switch c.Transport {
	case "udp", "tcp", "tls":
	default:
		errs = append(errs, fmt.Errorf("sip %s: transport %q is not udp, tcp or tls", c.Name, c.Transport))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("sip %s: listen %q must be host:port", c.Name, c.Listen))
	}
	if c.Password != "" && c.Username == "" {
		errs = append(errs, fmt.Errorf("sip %s: a password needs a username", c.Name))
	}
	for _, codec := range c.Codecs {
		if _, ok := codecByName(codec); !ok {
			errs = append(errs, fmt.Errorf("sip %s: codec %q is not PCMU or PCMA", c.Name, codec))
		}
	}
	for _, id := range c.CallerIDs {
		if !isNumber(id) {
			errs = append(errs, fmt.Errorf("sip %s: caller ID %q is not a number", c.Name, id))
		}
	}
	if c.FlashPrefix != "" && !isNumber(c.FlashPrefix) {
		errs = append(errs, fmt.Errorf("sip %s: flash prefix %q is not a number prefix", c.Name, c.FlashPrefix))
	}
	if c.FlashDigits < 1 || c.FlashDigits > 10 {
		errs = append(errs, fmt.Errorf("sip %s: flash digits %d out of 1..10", c.Name, c.FlashDigits))
	}
	if c.RingTimeout < 0 || c.CallTimeout < 0 || c.FlashRingTimeout < 0 || c.FlashHold < 0 {
		errs = append(errs, fmt.Errorf("sip %s: timeouts must not be negative", c.Name))
	}
	if c.RingTimeout >= c.CallTimeout {
		errs = append(errs, fmt.Errorf("sip %s: ring timeout %s must be shorter than call timeout %s", c.Name, c.RingTimeout, c.CallTimeout))
	}
	if c.MaxCalls < 1 {
		errs = append(errs, fmt.Errorf("sip %s: max calls must be at least 1", c.Name))
	}
	if c.JournalDir == "" {
		errs = append(errs, fmt.Errorf("sip %s: journal directory is required (it keeps a call from being placed twice)", c.Name))
	}
	return errors.Join(errs...)
}

// isNumber reports whether s is an optional '+' followed by 1-20 digits.
func isNumber(s string) bool {
	s = strings.TrimPrefix(s, "+")
	if s == "" || len(s) > 20 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
