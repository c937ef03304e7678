package fraud

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/nyaruka/phonenumbers"
	"google.golang.org/protobuf/proto"
)

// regionAndType must say exactly what libphonenumber says, for every
// region's example number of every type, for numbers near them (digits
// changed, one digit more or less) and for random numbers of every calling
// code.
func TestParseAndRegionAndTypeMatchLibphonenumber(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	types := []phonenumbers.PhoneNumberType{phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.TOLL_FREE,
		phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST, phonenumbers.VOIP, phonenumbers.PERSONAL_NUMBER,
		phonenumbers.PAGER, phonenumbers.UAN, phonenumbers.VOICEMAIL}
	var seeds []string // E.164
	for region := range phonenumbers.GetSupportedRegions() {
		for _, typ := range types {
			if n := phonenumbers.GetExampleNumberForType(region, typ); n != nil {
				seeds = append(seeds, phonenumbers.Format(n, phonenumbers.E164))
			}
		}
	}
	for cc := range phonenumbers.GetSupportedGlobalNetworkCallingCodes() {
		if n := phonenumbers.GetExampleNumberForNonGeoEntity(cc); n != nil {
			seeds = append(seeds, phonenumbers.Format(n, phonenumbers.E164))
		}
	}
	if len(seeds) < 1000 {
		t.Fatalf("only %d example numbers", len(seeds))
	}
	numbers := append([]string(nil), seeds...)
	for _, s := range seeds {
		digits := s[1:]
		for range 12 {
			b := []byte(digits)
			for range 1 + rng.IntN(3) {
				i := 1 + rng.IntN(len(b)-1)
				b[i] = byte('0' + rng.IntN(10))
			}
			numbers = append(numbers, "+"+string(b))
		}
		numbers = append(numbers, "+"+digits[:len(digits)-1], "+"+digits+strconv.Itoa(rng.IntN(10)))
	}
	for cc := range phonenumbers.GetSupportedCallingCodes() {
		for range 40 {
			numbers = append(numbers, fmt.Sprintf("+%d%d", cc, rng.Int64N(1e12)))
		}
	}
	// parseE164 must agree with Parse on all of them too, and on odd input.
	odd := []string{"+", "+1", "+12", "+123", "+1234", "+0123456789", "+44 7400 123456", "+44(0)7400123456",
		"+4407400123456", "+390612345678", "+3906123", "+12345678901234567890", "+123456789012345678901",
		"+999123456789", "+80012345678", "+8001234", "447400123456", "+٤٤٧٤٠٠١٢٣٤٥٦", "+44740012345x", "+54 9 11 1234 5678",
		"+5491112345678", "+5401112345678", "+7800123456", "+8800555353", "+1" + "0000000000", "+4400000000000"}
	for _, e164 := range append(odd, numbers...) {
		want, werr := phonenumbers.Parse(e164, "")
		got, err := parseE164(e164)
		if (err == nil) != (werr == nil) || err != nil && err.Error() != werr.Error() {
			t.Fatalf("parseE164(%q): error %v, Parse: %v", e164, err, werr)
		}
		if err == nil && !proto.Equal(got, want) {
			t.Fatalf("parseE164(%q) = %v, Parse: %v", e164, got, want)
		}
	}
	seen := map[phonenumbers.PhoneNumberType]int{}
	regions := map[string]bool{}
	compared := 0
	for _, e164 := range numbers {
		num, err := phonenumbers.Parse(e164, "")
		if err != nil {
			continue
		}
		wantRegion, wantType := phonenumbers.GetRegionCodeForNumber(num), phonenumbers.GetNumberType(num)
		region, typ := regionAndType(num)
		if region != wantRegion || typ != wantType {
			t.Fatalf("%s: region %q type %v, libphonenumber says %q %v", e164, region, typ, wantRegion, wantType)
		}
		seen[typ]++
		regions[region] = true
		compared++
	}
	// The comparison covered every type and the multi-region calling codes
	// (+44: GB, GG, IM, JE; +1: NANPA), not just the easy cases.
	for _, typ := range append(types, phonenumbers.FIXED_LINE_OR_MOBILE, phonenumbers.UNKNOWN) {
		if seen[typ] == 0 {
			t.Errorf("no number of type %v compared", typ)
		}
	}
	for _, r := range []string{"GB", "GG", "IM", "JE", "US", "CA", "JM", "001", ""} {
		if !regions[r] {
			t.Errorf("no number of region %q compared", r)
		}
	}
	t.Logf("%d numbers compared", compared)
}

// BenchmarkRegionAndType compares the parse and the region and type
// resolution of a trigger's number with the library's (fresh numbers).
func BenchmarkRegionAndType(b *testing.B) {
	nums := make([]*phonenumbers.PhoneNumber, 4096)
	phones := make([]string, len(nums))
	for i := range nums {
		phones[i] = fmt.Sprintf("+447400%06d", i*37)
		nums[i], _ = phonenumbers.Parse(phones[i], "")
	}
	b.Run("libphonenumber", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			_ = phonenumbers.GetRegionCodeForNumber(nums[i%len(nums)])
			_ = phonenumbers.GetNumberType(nums[i%len(nums)])
		}
	})
	b.Run("Parse", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			_, _ = phonenumbers.Parse(phones[i%len(phones)], "")
		}
	})
	b.Run("parseE164", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			_, _ = parseE164(phones[i%len(phones)])
		}
	})
	b.Run("regionAndType", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			_, _ = regionAndType(nums[i%len(nums)])
		}
	})
}
