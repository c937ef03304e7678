// Package fraud holds verifyd's fraud and abuse rules, free of HTTP and SQL:
// the destination allowlist, the number-type policy, the per-prefix
// conversion guard with automatic time-boxed blocks, the daily spend cap and
// a CAPTCHA verifier, composed by Guard in the order DESIGN.md gives
// (cheapest first). State lives behind Store and Ledger; MemStore is the
// in-process implementation. docs/fraud.md explains the rules and the
// simulation that tunes the defaults.
package fraud

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/verifyd/verifyd"
)

// Config is the operator's fraud configuration. Build it from
// DefaultConfig and change what the config file says.
type Config struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Destinations is the operator default for whitelisted_destinations,
	// used when a profile channel sets none. Empty (the shipped default)
	// allows no country (API.md D24).
	Destinations []string
	// Policy is the global number-type policy; a Request may override it.
	Policy Policy
	// Prefix tunes the per-prefix conversion guard.
	Prefix PrefixConfig
	// Prices prices sends for the spend cap.
	Prices PriceTable
	// Captcha, when set, is consulted last, for requests that carry
	// CaptchaRequired.
	Captcha *CaptchaVerifier
	// OnBlock is called after an automatic block (or, in monitor mode, a
	// would-be block) is recorded. It must not block.
	OnBlock func(Block)
	// OnSpend is called when a profile's spend of a UTC day reaches 80 %
	// and 100 % of its limit, once per threshold and day. It must not block.
	OnSpend func(SpendAlert)
}

// DefaultConfig returns the shipped configuration: deny-all destinations,
// DefaultPolicy, DefaultPrefixConfig, a flat price of 0.05 per send.
func DefaultConfig() Config {
	return Config{
		Policy: DefaultPolicy(),
		Prefix: DefaultPrefixConfig(),
		Prices: PriceTable{Default: Amount(0.05)},
	}
}

// Guard runs the fraud checks of a trigger and takes the statistics that
// feed them. It is safe for concurrent use.
type Guard struct {
	cfg    Config
	store  Store
	ledger Ledger
	prices prices
	safe   safeList

	monitorBlocks   atomic.Int64
	monitorRefusals atomic.Int64
}

// NewGuard validates cfg and returns a Guard on store and ledger (one
// MemStore can be both).
func NewGuard(cfg Config, store Store, ledger Ledger) (*Guard, error) {
	if store == nil || ledger == nil {
		return nil, errors.New("fraud: a store and a ledger are required")
	}
	if err := cfg.Prefix.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	p, err := compilePrices(cfg.Prices)
	if err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Guard{cfg: cfg, store: store, ledger: ledger, prices: p, safe: newSafeList(cfg.Prefix)}, nil
}

func (g *Guard) now() time.Time { return g.cfg.Now().UTC() }

// Request is one trigger to check.
type Request struct {
	ProfileID string
	Channel   verifyd.Channel
	// Phone is the destination in E.164, already validated (EPHONEFORMAT,
	// EPHONEINVALID are the caller's). Number is its parse, if the caller
	// has one (saves a parse); nil means Check parses Phone.
	Phone  string
	Number *phonenumbers.PhoneNumber
	// Region and Type, if both set, are the number's classification as
	// Classify returned it (the core's phone validation can share that
	// work); Check then does no libphonenumber work but needs Number.
	Region string
	Type   NumberType
	// Destinations is the channel's whitelisted_destinations; nil means
	// the operator default (Config.Destinations).
	Destinations []string
	// Policy overrides the global number-type policy channel by channel.
	Policy *Policy
	// SpendLimit is the profile's daily_spend_limit when
	// daily_spend_limit_enabled; nil means no cap.
	SpendLimit *Money
	// Test marks a test-mode request (test key or magic number): never
	// sent, never billed, exempt from every check. Check passes it at once.
	Test bool
	// CaptchaRequired asks Check to verify CaptchaToken (with RemoteIP)
	// against Config.Captcha as the last step.
	CaptchaRequired bool
	CaptchaToken    string
	RemoteIP        string
}

// NewRequest builds the Request of a trigger from the profile's settings.
func NewRequest(p *verifyd.Profile, ch verifyd.Channel, phone string) Request {
	r := Request{ProfileID: p.ID, Channel: ch, Phone: phone, Destinations: p.Settings(ch).WhitelistedDestinations}
	if p.DailySpendLimitEnabled && p.DailySpendLimit != nil {
		limit := Amount(*p.DailySpendLimit)
		r.SpendLimit = &limit
	}
	return r
}

// Decision is what Check learned about a number that passed.
type Decision struct {
	Region string
	Type   NumberType
	Prefix string
	Price  Money // the price of this send in the price table
	Test   bool
}

// Check runs the checks of a trigger, cheapest first: destination allowlist
// (EDESTINATION), number type (ENUMBERTYPE), prefix blocks and the
// conversion guard (EPREFIXBLOCK with RetryAfter), daily spend
// (ESPENDLIMIT with RetryAfter), then the CAPTCHA if required (EFORBIDDEN).
// Rate limits are not here: the core runs its limiter after Check (Check
// records nothing, so the order only decides which refusal a client sees).
// Storage failures return as they are.
func (g *Guard) Check(ctx context.Context, r Request) (Decision, error) {
	if r.Test {
		return Decision{Test: true}, nil
	}
	num := r.Number
	d := Decision{Region: r.Region, Type: r.Type}
	if num == nil || d.Region == "" || d.Type == "" {
		c, err := classify(r.Phone, num)
		if err != nil {
			return Decision{}, err
		}
		num, d.Region, d.Type = c.Number, c.Region, c.Type
	}
	dest := r.Destinations
	if dest == nil {
		dest = g.cfg.Destinations
	}
	if err := CheckDestination(r.Channel, dest, d.Region, r.Phone); err != nil {
		return d, err
	}
	policy := g.cfg.Policy
	if r.Policy != nil {
		policy = policy.Override(*r.Policy)
	}
	if err := policy.Check(r.Channel, d.Type); err != nil {
		return d, err
	}
	now := g.now()
	d.Prefix = prefixOf(r.Phone, num.GetCountryCode(), g.cfg.Prefix.Digits)
	if err := g.checkPrefix(ctx, r.Phone, d.Prefix, now); err != nil {
		return d, err
	}
	d.Price = g.prices.price(d.Region, r.Channel)
	if r.SpendLimit != nil {
		if err := checkSpend(ctx, g.ledger, r.ProfileID, *r.SpendLimit, d.Price, now); err != nil {
			return d, err
		}
	}
	if r.CaptchaRequired {
		if g.cfg.Captcha == nil {
			return d, errors.New("fraud: CAPTCHA required but no verifier configured")
		}
		if err := g.cfg.Captcha.Verify(ctx, r.CaptchaToken, r.RemoteIP); err != nil {
			return d, err
		}
	}
	return d, nil
}

// Price returns the price-table price of one send.
func (g *Guard) Price(region string, ch verifyd.Channel) Money { return g.prices.price(region, ch) }

// Attempt is one send handed to a carrier.
type Attempt struct {
	ProfileID string
	Channel   verifyd.Channel
	Phone     string // E.164
	// Prefix and Region as Check returned them; empty means recomputed
	// from Phone.
	Prefix string
	Region string
	// Cost is what the send costs; 0 means the price-table price.
	Cost Money
	// SpendLimit is the profile's limit as in Request (for the alerts).
	SpendLimit *Money
	// Failover marks a further carrier attempt of a verification already
	// recorded: billed, not counted again as a send of the prefix.
	Failover bool
	Test     bool // test mode: nothing is recorded
}

// Sent records a send: one more send of its prefix (unless Failover or the
// number is safe-listed) and its cost in the profile's spend of today,
// firing OnSpend at the 80 % and 100 % crossings.
func (g *Guard) Sent(ctx context.Context, a Attempt) error {
	if a.Test {
		return nil
	}
	now := g.now()
	if a.Prefix == "" || a.Region == "" {
		num, err := phonenumbers.Parse(a.Phone, "")
		if err != nil {
			return fmt.Errorf("fraud: sent to unparsable %q: %w", a.Phone, err)
		}
		a.Prefix = prefixOf(a.Phone, num.GetCountryCode(), g.cfg.Prefix.Digits)
		a.Region = phonenumbers.GetRegionCodeForNumber(num)
	}
	if !a.Failover && !g.safe.has(a.Phone) {
		if err := g.store.Incr(ctx, a.Prefix, KindSent, now); err != nil {
			return err
		}
	}
	cost := a.Cost
	if cost == 0 {
		cost = g.prices.price(a.Region, a.Channel)
	}
	alerts, err := addSpend(ctx, g.ledger, a.ProfileID, a.SpendLimit, cost, now)
	if err != nil {
		return err
	}
	if g.cfg.OnSpend != nil {
		for _, al := range alerts {
			g.cfg.OnSpend(al)
		}
	}
	return nil
}

// Completed records that the verification sent to phone at sentAt was
// completed with the right code. The completion counts in the bucket of its
// send, so conversion compares like with like; a zero sentAt means now.
func (g *Guard) Completed(ctx context.Context, phone string, sentAt time.Time) error {
	if g.safe.has(phone) {
		return nil
	}
	n := callingCodeLen(phone)
	if n == 0 {
		return fmt.Errorf("fraud: completed on %q: unknown country code", phone)
	}
	prefix := phone
	if end := 1 + n + g.cfg.Prefix.Digits; end < len(phone) {
		prefix = phone[:end]
	}
	if sentAt.IsZero() {
		sentAt = g.now()
	}
	return g.store.Incr(ctx, prefix, KindCompleted, sentAt)
}

// MonitorStats returns, since start, how many blocks monitor mode recorded
// and how many sends it let through that enforcement would have refused.
func (g *Guard) MonitorStats() (blocks, refusals int64) {
	return g.monitorBlocks.Load(), g.monitorRefusals.Load()
}
