package fraud

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nyaruka/phonenumbers"

	"github.com/verifyd/verifyd"
)

// NumberType is libphonenumber's classification of a number, by name.
type NumberType string

// The number types of libphonenumber. Unknown also covers numbers in no
// allocated range (invalid for their country).
const (
	FixedLine         NumberType = "fixed_line"
	Mobile            NumberType = "mobile"
	FixedLineOrMobile NumberType = "fixed_line_or_mobile"
	TollFree          NumberType = "toll_free"
	PremiumRate       NumberType = "premium_rate"
	SharedCost        NumberType = "shared_cost"
	VoIP              NumberType = "voip"
	PersonalNumber    NumberType = "personal_number"
	Pager             NumberType = "pager"
	UAN               NumberType = "uan"
	Voicemail         NumberType = "voicemail"
	Unknown           NumberType = "unknown"
)

// Classification is what libphonenumber's data says about a number.
type Classification struct {
	Number *phonenumbers.PhoneNumber
	Region string // ISO 3166-1 alpha-2, "001" for non-geographic numbers
	Type   NumberType
}

// Classify parses an E.164 number and resolves its region and type, the
// libphonenumber work of a trigger done once: Type is Unknown exactly when
// the number is invalid for its region (what phonenumbers.IsValidNumber
// checks), so the core's validation can use it and pass Region, Type and
// Number on in the Request.
func Classify(phone string) (Classification, error) { return classify(phone, nil) }

func classify(phone string, num *phonenumbers.PhoneNumber) (Classification, error) {
	if num == nil {
		var err error
		if num, err = parseE164(phone); err != nil {
			return Classification{}, &verifyd.Error{Code: verifyd.EPHONEINVALID, Message: "The phone number is not valid for its country."}
		}
	}
	region, t := regionAndType(num)
	return Classification{Number: num, Region: region, Type: typeName(t)}, nil
}

// TypeOf classifies a parsed number with libphonenumber's data.
func TypeOf(num *phonenumbers.PhoneNumber) NumberType {
	_, t := regionAndType(num)
	return typeName(t)
}

func typeName(t phonenumbers.PhoneNumberType) NumberType {
	switch t {
	case phonenumbers.FIXED_LINE:
		return FixedLine
	case phonenumbers.MOBILE:
		return Mobile
	case phonenumbers.FIXED_LINE_OR_MOBILE:
		return FixedLineOrMobile
	case phonenumbers.TOLL_FREE:
		return TollFree
	case phonenumbers.PREMIUM_RATE:
		return PremiumRate
	case phonenumbers.SHARED_COST:
		return SharedCost
	case phonenumbers.VOIP:
		return VoIP
	case phonenumbers.PERSONAL_NUMBER:
		return PersonalNumber
	case phonenumbers.PAGER:
		return Pager
	case phonenumbers.UAN:
		return UAN
	case phonenumbers.VOICEMAIL:
		return Voicemail
	}
	return Unknown
}

// AllChannels is the Policy key whose rule applies to every channel.
const AllChannels verifyd.Channel = "*"

// Policy says which number types may receive a channel. For a channel, a
// non-empty Allow list admits only its types; otherwise a type is refused if
// Deny lists it for the channel or for AllChannels.
type Policy struct {
	Allow map[verifyd.Channel][]NumberType
	Deny  map[verifyd.Channel][]NumberType
}

// DefaultPolicy refuses premium-rate, shared-cost, pager, UAN, voicemail and
// unknown (unallocated) numbers on every channel, and fixed lines for sms and
// whatsapp (they cannot receive them). Fixed-line-or-mobile is allowed: in
// the US and elsewhere the data cannot tell them apart.
func DefaultPolicy() Policy {
	return Policy{Deny: map[verifyd.Channel][]NumberType{
		AllChannels:      {PremiumRate, SharedCost, Pager, UAN, Voicemail, Unknown},
		verifyd.SMS:      {FixedLine},
		verifyd.WhatsApp: {FixedLine},
	}}
}

// Override returns p with the channels that o names (in Allow or Deny)
// replaced by o's rules for them: a profile's policy overrides the global one
// channel by channel. Overriding AllChannels replaces the common deny list.
func (p Policy) Override(o Policy) Policy {
	r := Policy{Allow: map[verifyd.Channel][]NumberType{}, Deny: map[verifyd.Channel][]NumberType{}}
	for ch, ts := range p.Allow {
		r.Allow[ch] = ts
	}
	for ch, ts := range p.Deny {
		r.Deny[ch] = ts
	}
	named := map[verifyd.Channel]bool{}
	for ch := range o.Allow {
		named[ch] = true
	}
	for ch := range o.Deny {
		named[ch] = true
	}
	for ch := range named {
		delete(r.Allow, ch)
		delete(r.Deny, ch)
		if ts, ok := o.Allow[ch]; ok {
			r.Allow[ch] = ts
		}
		if ts, ok := o.Deny[ch]; ok {
			r.Deny[ch] = ts
		}
	}
	return r
}

// Allowed reports whether type t may receive channel ch.
func (p Policy) Allowed(ch verifyd.Channel, t NumberType) bool {
	if allow := p.Allow[ch]; len(allow) > 0 {
		return slices.Contains(allow, t)
	}
	return !slices.Contains(p.Deny[ch], t) && !slices.Contains(p.Deny[AllChannels], t)
}

// Validate checks that every type named is known.
func (p Policy) Validate() error {
	for _, m := range []map[verifyd.Channel][]NumberType{p.Allow, p.Deny} {
		for ch, ts := range m {
			for _, t := range ts {
				if !knownType(t) {
					return fmt.Errorf("fraud: policy for %s names unknown number type %q", ch, t)
				}
			}
		}
	}
	return nil
}

func knownType(t NumberType) bool {
	switch t {
	case FixedLine, Mobile, FixedLineOrMobile, TollFree, PremiumRate, SharedCost, VoIP,
		PersonalNumber, Pager, UAN, Voicemail, Unknown:
		return true
	}
	return false
}

// Check returns nil or an ENUMBERTYPE error naming the type.
func (p Policy) Check(ch verifyd.Channel, t NumberType) error {
	if p.Allowed(ch, t) {
		return nil
	}
	if t == Unknown {
		return verifyd.Errorf(verifyd.ENUMBERTYPE,
			"The phone number is in no allocated range of its country (number type unknown); verifyd does not send %s to it.", ch)
	}
	return verifyd.Errorf(verifyd.ENUMBERTYPE,
		"The phone number is a %s number; this profile does not send %s to %s numbers.",
		strings.ReplaceAll(string(t), "_", "-"), ch, strings.ReplaceAll(string(t), "_", "-"))
}
