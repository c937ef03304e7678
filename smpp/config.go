package smpp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Bind modes.
const (
	BindTRX  = "trx"   // one bind_transceiver per bind: submits and receipts
	BindTXRX = "tx+rx" // a bind_transmitter and a bind_receiver per bind
)

// Config configures a Sender. Zero fields take the defaults noted.
type Config struct {
	Name       string // sender name in SendResult and receipts (default "smpp")
	Addr       string // host:port of the SMSC (required)
	SystemID   string // required, at most 15 octets
	Password   string // at most 8 octets; never logged
	SystemType string
	BindMode   string      // BindTRX (default) or BindTXRX
	TLS        *tls.Config // nil: plain TCP

	// SourceAddr is used when a message has no AlphaSender: an E.164
	// number ("+15550001111") goes out as TON 1 NPI 1, anything else as
	// an alphanumeric sender (TON 5 NPI 0, at most 11 characters).
	SourceAddr string

	TPS    float64 // submits per second per bind; 0 is unlimited
	Window int     // outstanding requests per bind (default 10)
	Binds  int     // binds (sessions) to keep up (default 1)

	EnquireInterval time.Duration // idle time before enquire_link (default 30s)
	ResponseTimeout time.Duration // wait for any response; also dial/bind timeout (default 10s)
	ReconnectMin    time.Duration // first reconnect wait (default 1s)
	ReconnectMax    time.Duration // cap of the doubling wait (default 60s)

	// Retries of a submit answered ESME_RTHROTTLED or ESME_RMSGQFUL
	// (default 3), waiting RetryBackoff (default 500ms), doubled each time.
	Retries      int
	RetryBackoff time.Duration

	// UseMessagePayload sends text longer than one SMS whole in the
	// message_payload TLV instead of UDH-concatenated parts.
	UseMessagePayload bool

	// IDForm says how receipt ids relate to submit_sm_resp ids.
	IDForm IDForm

	// TrackSize and TrackTTL bound the in-memory map from part ids to
	// message ids (defaults 100000 ids, 72h).
	TrackSize int
	TrackTTL  time.Duration

	// Now is the clock of the TPS limiter and the tracker (default
	// time.Now).
	Now func() time.Time
}

// LogValue keeps the password out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", c.Name), slog.String("addr", c.Addr), slog.String("system_id", c.SystemID),
		slog.String("bind_mode", c.BindMode), slog.Bool("tls", c.TLS != nil), slog.Int("binds", c.Binds),
		slog.Float64("tps", c.TPS), slog.Int("window", c.Window),
	)
}

// withDefaults returns c with zero fields defaulted.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Name == "" {
		c.Name = "smpp"
	}
	if c.BindMode == "" {
		c.BindMode = BindTRX
	}
	if c.Window <= 0 {
		c.Window = 10
	}
	if c.Binds <= 0 {
		c.Binds = 1
	}
	def(&c.EnquireInterval, 30*time.Second)
	def(&c.ResponseTimeout, 10*time.Second)
	def(&c.ReconnectMin, time.Second)
	def(&c.ReconnectMax, 60*time.Second)
	def(&c.RetryBackoff, 500*time.Millisecond)
	def(&c.TrackTTL, 72*time.Hour)
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = c.ReconnectMin
	}
	if c.Retries == 0 {
		c.Retries = 3
	}
	if c.TrackSize <= 0 {
		c.TrackSize = 100_000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("smpp: Addr %q: %w", c.Addr, err))
	}
	if c.SystemID == "" || len(c.SystemID) >= maxSystemID {
		errs = append(errs, fmt.Errorf("smpp: SystemID must be 1 to %d octets", maxSystemID-1))
	}
	if len(c.Password) >= maxPassword {
		errs = append(errs, fmt.Errorf("smpp: Password must be at most %d octets", maxPassword-1))
	}
	if len(c.SystemType) >= maxSystemType {
		errs = append(errs, fmt.Errorf("smpp: SystemType must be at most %d octets", maxSystemType-1))
	}
	if c.BindMode != "" && c.BindMode != BindTRX && c.BindMode != BindTXRX {
		errs = append(errs, fmt.Errorf("smpp: BindMode %q: want %q or %q", c.BindMode, BindTRX, BindTXRX))
	}
	if c.TPS < 0 {
		errs = append(errs, errors.New("smpp: TPS must not be negative"))
	}
	switch c.IDForm {
	case IDAsGiven, IDHexDec, IDDecHex:
	default:
		errs = append(errs, fmt.Errorf("smpp: IDForm %q: want %q, %q or %q", c.IDForm, IDAsGiven, IDHexDec, IDDecHex))
	}
	if c.SourceAddr != "" {
		if _, err := sourceAddress(c.SourceAddr); err != nil {
			errs = append(errs, fmt.Errorf("smpp: SourceAddr: %w", err))
		}
	}
	return errors.Join(errs...)
}
