package fraud

import (
	"strings"

	"github.com/verifyd/verifyd"
)

// nonGeographic is libphonenumber's region for numbers of no country
// (satellite, international networks: +800, +808, +870, +881, +882, +883, +888, +979).
const nonGeographic = "001"

// CheckDestination enforces a channel's whitelisted_destinations: ISO 3166-1
// alpha-2 region codes, "*" for every country, empty for none (API.md D24:
// shipped empty = deny all). region is the number's region as libphonenumber
// resolves it. Non-geographic numbers (region "001") are refused even under
// "*": they are not a country, and they are favoured by toll fraud.
// It returns nil or an EDESTINATION error telling the client what to change.
func CheckDestination(ch verifyd.Channel, allowed []string, region, phone string) error {
	if region == "" || region == nonGeographic || region == "ZZ" {
		return verifyd.Errorf(verifyd.EDESTINATION,
			"Destination %s belongs to no country (satellite or international network); verifyd never sends %s there.",
			callingCodeOf(phone), ch)
	}
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(a, region) {
			return nil
		}
	}
	if len(allowed) == 0 {
		return verifyd.Errorf(verifyd.EDESTINATION,
			"Destination %s is not allowed for %s on this profile: its whitelisted_destinations is empty, which allows no country; add %q (or \"*\" for all) to whitelisted_destinations.",
			region, ch, region)
	}
	return verifyd.Errorf(verifyd.EDESTINATION,
		"Destination %s is not allowed for %s on this profile; add %q to whitelisted_destinations.", region, ch, region)
}

// callingCodeOf returns "+" and the country calling code of an E.164 number,
// or the number itself if its code is unknown.
func callingCodeOf(phone string) string {
	if n := callingCodeLen(phone); n > 0 {
		return phone[:1+n]
	}
	return phone
}
