package fraud

import (
	"regexp"
	"slices"
	"strconv"
	"sync"

	"github.com/nyaruka/phonenumbers"
	"google.golang.org/protobuf/proto"
)

// regionAndType resolves a parsed number's region and type exactly as
// phonenumbers.GetRegionCodeForNumber and phonenumbers.GetNumberType do
// (same metadata, same order of tests; the equivalence is tested over every
// region's example numbers and their neighbours), at a fraction of the cost:
// the library builds each pattern's "^(?:…)$" string and looks its regexp
// up in a locked cache by that string for every test (twice per number
// description), and GetNumberType resolves the region a second time. Here
// each region's patterns are compiled once, on its first number, and the
// type found while resolving the region is reused.
func regionAndType(num *phonenumbers.PhoneNumber) (string, phonenumbers.PhoneNumberType) {
	cc := int(num.GetCountryCode())
	regions := phonenumbers.GetRegionCodesForCountryCode(cc)
	if len(regions) == 0 {
		return "", phonenumbers.UNKNOWN
	}
	nsn := phonenumbers.GetNationalSignificantNumber(num)
	if len(regions) == 1 {
		m := metadataFor(cc, regions[0])
		if m == nil {
			return regions[0], phonenumbers.UNKNOWN
		}
		return regions[0], m.numberType(nsn)
	}
	for _, region := range regions {
		m := metadataFor(cc, region) // never nil: the regions come from the data
		if m == nil {
			continue
		}
		if m.leading != nil {
			if m.leading.MatchString(nsn) {
				return region, m.numberType(nsn)
			}
		} else if t := m.numberType(nsn); t != phonenumbers.UNKNOWN {
			return region, t
		}
	}
	return "", phonenumbers.UNKNOWN
}

// desc is one number description of a region: its possible lengths and
// its national number pattern, anchored at both ends.
type desc struct {
	lengths []int32
	rx      *regexp.Regexp
}

// matches is libphonenumber's isNumberMatchingDesc.
func (d *desc) matches(nsn string) bool {
	if len(d.lengths) > 0 && !slices.Contains(d.lengths, int32(len(nsn))) {
		return false
	}
	return d.rx.MatchString(nsn)
}

// regionData is one region's metadata, compiled.
type regionData struct {
	general, premium, tollFree, sharedCost, voip, personal, pager, uan, voicemail, fixed, mobile desc

	sameMobileAndFixed bool
	leading            *regexp.Regexp // "^(?:leading digits)", nil if the region has none
	nationalPrefix     *regexp.Regexp // "^(?:national prefix for parsing)", nil if none
}

// numberType is libphonenumber's getNumberTypeHelper.
func (m *regionData) numberType(nsn string) phonenumbers.PhoneNumberType {
	switch {
	case !m.general.matches(nsn):
		return phonenumbers.UNKNOWN
	case m.premium.matches(nsn):
		return phonenumbers.PREMIUM_RATE
	case m.tollFree.matches(nsn):
		return phonenumbers.TOLL_FREE
	case m.sharedCost.matches(nsn):
		return phonenumbers.SHARED_COST
	case m.voip.matches(nsn):
		return phonenumbers.VOIP
	case m.personal.matches(nsn):
		return phonenumbers.PERSONAL_NUMBER
	case m.pager.matches(nsn):
		return phonenumbers.PAGER
	case m.uan.matches(nsn):
		return phonenumbers.UAN
	case m.voicemail.matches(nsn):
		return phonenumbers.VOICEMAIL
	}
	if m.fixed.matches(nsn) {
		if m.sameMobileAndFixed || m.mobile.matches(nsn) {
			return phonenumbers.FIXED_LINE_OR_MOBILE
		}
		return phonenumbers.FIXED_LINE
	}
	if !m.sameMobileAndFixed && m.mobile.matches(nsn) {
		return phonenumbers.MOBILE
	}
	return phonenumbers.UNKNOWN
}

var phoneData struct {
	once     sync.Once
	regions  map[string]*phonenumbers.PhoneMetadata // by region code
	nonGeo   map[int32]*phonenumbers.PhoneMetadata  // "001" entries, by calling code
	mu       sync.RWMutex
	compiled map[*phonenumbers.PhoneMetadata]*regionData
}

// metadataFor is libphonenumber's getMetadataForRegionOrCallingCode,
// compiled (nil when it has no metadata).
func metadataFor(cc int, region string) *regionData {
	d := &phoneData
	d.once.Do(loadPhoneData)
	var md *phonenumbers.PhoneMetadata
	if region == "001" {
		md = d.nonGeo[int32(cc)]
	} else {
		md = d.regions[region]
	}
	if md == nil {
		return nil
	}
	d.mu.RLock()
	m := d.compiled[md]
	d.mu.RUnlock()
	if m != nil {
		return m
	}
	m = compileRegion(md)
	d.mu.Lock()
	if prev := d.compiled[md]; prev != nil {
		m = prev
	} else {
		d.compiled[md] = m
	}
	d.mu.Unlock()
	return m
}

func loadPhoneData() {
	d := &phoneData
	d.regions = map[string]*phonenumbers.PhoneMetadata{}
	d.nonGeo = map[int32]*phonenumbers.PhoneMetadata{}
	d.compiled = map[*phonenumbers.PhoneMetadata]*regionData{}
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		panic("fraud: libphonenumber metadata: " + err.Error()) // embedded data: cannot happen
	}
	for _, md := range coll.GetMetadata() {
		if md.GetId() == "001" {
			d.nonGeo[md.GetCountryCode()] = md
		} else {
			d.regions[md.GetId()] = md
		}
	}
}

func compileRegion(md *phonenumbers.PhoneMetadata) *regionData {
	c := func(nd *phonenumbers.PhoneNumberDesc) desc {
		var lengths []int32
		if nd != nil {
			lengths = nd.PossibleLength
		}
		return desc{lengths: lengths, rx: regexp.MustCompile("^(?:" + nd.GetNationalNumberPattern() + ")$")}
	}
	m := &regionData{
		general: c(md.GetGeneralDesc()), premium: c(md.GetPremiumRate()), tollFree: c(md.GetTollFree()),
		sharedCost: c(md.GetSharedCost()), voip: c(md.GetVoip()), personal: c(md.GetPersonalNumber()),
		pager: c(md.GetPager()), uan: c(md.GetUan()), voicemail: c(md.GetVoicemail()),
		fixed: c(md.GetFixedLine()), mobile: c(md.GetMobile()),
		sameMobileAndFixed: md.GetSameMobileAndFixedLinePattern(),
	}
	if ld := md.GetLeadingDigits(); ld != "" {
		m.leading = regexp.MustCompile("^(?:" + ld + ")")
	}
	if np := md.GetNationalPrefixForParsing(); np != "" {
		m.nationalPrefix = regexp.MustCompile("^(?:" + np + ")")
	}
	return m
}

// parseE164 is phonenumbers.Parse(phone, "") (the result and the error are
// the same; tested), without the library's general machinery for the usual
// input, "+" and digits whose national part cannot start with a national
// prefix: its country calling code is the shortest prefix of one to three
// digits that is one, and its national number the rest. Anything else
// (other characters, too short or long, a national part the region's
// national prefix pattern matches, which Parse may strip) goes to Parse.
func parseE164(phone string) (*phonenumbers.PhoneNumber, error) {
	if len(phone) < 4 || len(phone) > 20 || phone[0] != '+' || phone[1] == '0' {
		return phonenumbers.Parse(phone, "")
	}
	for i := 1; i < len(phone); i++ {
		if phone[i] < '0' || phone[i] > '9' {
			return phonenumbers.Parse(phone, "")
		}
	}
	digits := phone[1:]
	for i := 1; i <= 3; i++ {
		cc, _ := strconv.Atoi(digits[:i])
		regions := phonenumbers.GetRegionCodesForCountryCode(cc)
		if len(regions) == 0 {
			continue
		}
		nsn := digits[i:]
		m := metadataFor(cc, regions[0])
		if len(nsn) < 2 || len(nsn) > 17 || m == nil || m.nationalPrefix != nil && m.nationalPrefix.MatchString(nsn) {
			break
		}
		n, err := strconv.ParseUint(nsn, 10, 64)
		if err != nil {
			break
		}
		num := &phonenumbers.PhoneNumber{CountryCode: proto.Int32(int32(cc)), NationalNumber: proto.Uint64(n)}
		if nsn[0] == '0' {
			num.ItalianLeadingZero = proto.Bool(true)
			zeros := 1
			for zeros < len(nsn)-1 && nsn[zeros] == '0' {
				zeros++
			}
			if zeros != 1 {
				num.NumberOfLeadingZeros = proto.Int32(int32(zeros))
			}
		}
		return num, nil
	}
	return phonenumbers.Parse(phone, "")
}
