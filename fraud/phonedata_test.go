package fraud

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// regionAndType must say exactly what libphonenumber says, for every
// region's example number of every type, for numbers near them (digits
// changed, one digit more or less) and for random numbers of every calling
// code.
func TestRegionAndTypeMatchesLibphonenumber(t *testing.T) {
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

// BenchmarkRegionAndType compares the region and type resolution of a
// trigger's number with the library's two calls (fresh numbers).
func BenchmarkRegionAndType(b *testing.B) {
	nums := make([]*phonenumbers.PhoneNumber, 4096)
	for i := range nums {
		nums[i], _ = phonenumbers.Parse(fmt.Sprintf("+447400%06d", i*37), "")
	}
	b.Run("libphonenumber", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			_ = phonenumbers.GetRegionCodeForNumber(nums[i%len(nums)])
			_ = phonenumbers.GetNumberType(nums[i%len(nums)])
		}
	})
	b.Run("regionAndType", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			_, _ = regionAndType(nums[i%len(nums)])
		}
	})
}
