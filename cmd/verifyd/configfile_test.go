package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/service"
)

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "verifyd.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func envOf(kv ...string) func(string) string {
	return func(k string) string {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1]
			}
		}
		return ""
	}
}

// TestConfigFile_READMEExample: the README's complete example is a valid
// config, and it sets what it says in the core.
func TestConfigFile_READMEExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "## Delivering to carriers")
	if !ok {
		t.Fatal("README has no section \"Delivering to carriers\"")
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("the section has no ```yaml example")
	}
	env := envOf("SMPP_PASSWORD", "s3cret", "TWILIO_AUTH_TOKEN", "tok", "TELNYX_API_KEY", "KEY_x",
		"TELNYX_PUBLIC_KEY", "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", "SIP_PASSWORD", "pw")
	fc, err := loadConfigFile(writeConfig(t, example), env)
	if err != nil {
		t.Fatalf("README example: %v", err)
	}
	if len(fc.Senders) != 5 || len(fc.Routes) != 4 {
		t.Fatalf("README example: %d senders, %d routes", len(fc.Senders), len(fc.Routes))
	}
	if got := fc.sender("smsc-eu").SMPP.Password.value; got != "s3cret" {
		t.Fatalf("password from ${SMPP_PASSWORD} = %q", got)
	}
	var o service.Options
	fc.serviceOptions(&o)
	if !slices.Equal(o.Channels, []verifyd.Channel{verifyd.SMS, verifyd.Call, verifyd.Flashcall}) ||
		o.FlashCallerPrefix != "+4930555" || o.FlashDigits != 4 {
		t.Fatalf("service options: channels %v, flash %q/%d", o.Channels, o.FlashCallerPrefix, o.FlashDigits)
	}
}

func TestConfigFile_Errors(t *testing.T) {
	const smpp = `  - {name: s, type: smpp, smpp: {address: "127.0.0.1:2775", system_id: t, password: pw}}
`
	for _, c := range []struct{ name, yaml, want string }{
		{"no senders", "routes: []\n", "senders: at least one sender is required"},
		{"no routes", "senders:\n" + smpp, "routes: at least one route is required"},
		{"bad name", "senders:\n  - {name: My SMSC, type: console}\nroutes: [{channel: sms, senders: [x]}]\n", "senders[0].name"},
		{"duplicate", "senders:\n" + smpp + smpp + "routes: [{channel: sms, senders: [s]}]\n", `sender "s" is declared twice`},
		{"bad type", "senders:\n  - {name: s, type: kannel}\nroutes: [{channel: sms, senders: [s]}]\n", `senders[0] (s).type: "kannel" is not`},
		{"wrong block", "senders:\n  - {name: s, type: console, smpp: {address: x}}\nroutes: [{channel: sms, senders: [s]}]\n", "senders[0] (s).smpp: a smpp block on a sender of type console"},
		{"missing field", "senders:\n  - {name: s, type: smpp, smpp: {system_id: t}}\nroutes: [{channel: sms, senders: [s]}]\n", "senders[0] (s).smpp.address: is required"},
		{"bad channel", "senders:\n" + smpp + "routes: [{channel: whatsapp, senders: [s]}]\n", `routes[0].channel: "whatsapp" is not sms, call or flashcall`},
		{"bad prefix", "senders:\n" + smpp + "routes: [{channel: sms, prefixes: [UK], senders: [s]}]\n", `routes[0].prefixes[0]: "UK"`},
		{"partial env", "senders:\n  - {name: s, type: smpp, smpp: {address: \"h:1\", system_id: t, password: \"a${X}\"}}\nroutes: [{channel: sms, senders: [s]}]\n", "must be the whole value"},
		{"flash without prefix", "senders:\n  - {name: t, type: sip, sip: {trunk: \"h:5060\", journal_dir: /tmp/j}}\nroutes: [{channel: flashcall, senders: [t]}]\n", "has no flash_prefix"},
		{"telnyx webhook without key", "senders:\n  - {name: x, type: telnyx, telnyx: {api_key: k, from: \"+1555\", webhook_url: \"https://a.example/h\"}}\nroutes: [{channel: sms, senders: [x]}]\n", "telnyx.public_key: is required with webhook_url"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeConfig(t, c.yaml)
			_, err := loadConfigFile(path, envOf())
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want one naming %s and containing %q", err, path, c.want)
			}
		})
	}
}

// TestDelivery_WorkerOptions: a SIP sender stretches the worker's send
// timeout to its call timeout, and the lease beyond that.
func TestDelivery_WorkerOptions(t *testing.T) {
	d := &delivery{sendTimeout: defaultSendTimeout}
	if o := d.workerOptions(30 * time.Second); o.SendTimeout != 15*time.Second || o.Lease != 30*time.Second {
		t.Fatalf("console: %+v", o)
	}
	fc, err := loadConfigFile(writeConfig(t, `
senders:
  - {name: t, type: sip, sip: {trunk: "127.0.0.1:5060", call_timeout: 90s, journal_dir: `+t.TempDir()+`}}
routes: [{channel: call, senders: [t]}]
`), envOf())
	if err != nil {
		t.Fatal(err)
	}
	d, err = openDelivery(fc, defaultConfig(), nil, nil, slog.New(slog.DiscardHandler), os.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if o := d.workerOptions(30 * time.Second); o.SendTimeout != 95*time.Second || o.Lease != 110*time.Second {
		t.Fatalf("sip with a 90 s call timeout: %+v", o)
	}
	var o service.Options
	fc.serviceOptions(&o)
	if !slices.Equal(o.Channels, []verifyd.Channel{verifyd.Call}) {
		t.Fatalf("channels %v, want only call (sms and flashcall answer V0009)", o.Channels)
	}
}
