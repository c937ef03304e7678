package sip

import (
	"strings"
	"testing"
	"time"
)

func TestConfig_Validate(t *testing.T) {
	ok := DefaultConfig()
	ok.Trunk, ok.JournalDir = "sip.example.net:5060", "/tmp/j"
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if d := ok.withDefaults().Domain; d != "sip.example.net" {
		t.Fatalf("domain default %q", d)
	}
	for name, tc := range map[string]struct {
		mutate func(*Config)
		want   string
	}{
		"Trunk":       {func(c *Config) { c.Trunk = "sip.example.net" }, "host:port"},
		"Transport":   {func(c *Config) { c.Transport = "ws" }, "transport"},
		"Codec":       {func(c *Config) { c.Codecs = []string{"opus"} }, "codec"},
		"CallerID":    {func(c *Config) { c.CallerIDs = []string{"anonymous"} }, "caller ID"},
		"FlashPrefix": {func(c *Config) { c.FlashPrefix = "+1-555" }, "flash prefix"},
		"Ring":        {func(c *Config) { c.RingTimeout = time.Minute; c.CallTimeout = 30 * time.Second }, "shorter"},
		"Journal":     {func(c *Config) { c.JournalDir = "" }, "journal"},
		"Password":    {func(c *Config) { c.Password = "x" }, "username"},
	} {
		c := ok
		tc.mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", name, err, tc.want)
		}
	}
}
