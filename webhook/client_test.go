package webhook

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func TestSignVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	body := []byte(`{"data":{"event_type":"verify.sent"}}`)
	now := time.Unix(1_800_000_000, 0)
	ts, sig := Sign(priv, now, body)
	if ts != "1800000000" || len(sig) != 88 || !strings.HasSuffix(sig, "==") {
		t.Fatalf("headers %q %q: want unix seconds and padded base64 of 64 bytes", ts, sig)
	}
	cases := []struct {
		name string
		pub  ed25519.PublicKey
		ts   string
		sig  string
		body []byte
		now  time.Time
		want bool
	}{
		{"valid", pub, ts, sig, body, now, true},
		{"valid within tolerance", pub, ts, sig, body, now.Add(299 * time.Second), true},
		{"stale", pub, ts, sig, body, now.Add(301 * time.Second), false},
		{"future", pub, ts, sig, body, now.Add(-301 * time.Second), false},
		{"tampered body", pub, ts, sig, append([]byte(nil), append(body, ' ')...), now, false},
		{"wrong key", other, ts, sig, body, now, false},
		{"other timestamp", pub, "1800000001", sig, body, now, false},
		{"unpadded", pub, ts, strings.TrimRight(sig, "="), body, now, false},
		{"missing signature", pub, ts, "", body, now, false},
		{"signed timestamp with sign", pub, "+" + ts, sig, body, now, false},
	}
	for _, c := range cases {
		if got := Verify(c.pub, c.ts, c.sig, c.body, c.now, 300*time.Second); got != c.want {
			t.Errorf("%s: Verify = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestBody(t *testing.T) {
	e := &verifyd.Event{ID: "0c1d2e3f-4a5b-7c6d-8e7f-9a0b1c2d3e4f", Type: verifyd.EventDelivered,
		OccurredAt: time.Date(2026, 1, 31, 9, 15, 4, 602_345_000, time.UTC), Payload: []byte(`{"id":"x","custom_code":null}`)}
	got := string(Body(e, 2, "https://app.example/hooks"))
	want := `{"data":{"event_type":"verify.delivered","id":"0c1d2e3f-4a5b-7c6d-8e7f-9a0b1c2d3e4f",` +
		`"occurred_at":"2026-01-31T09:15:04.602+00:00","record_type":"event","payload":{"id":"x","custom_code":null}},` +
		`"meta":{"attempt":2,"delivered_to":"https://app.example/hooks"}}`
	if got != want {
		t.Fatalf("body\n got %s\nwant %s", got, want)
	}
}

func TestPolicy(t *testing.T) {
	refused := []string{"127.0.0.1", "127.1.2.3", "::1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "fd12::1",
		"169.254.169.254", "fe80::1", "fd00:ec2::254", "100.64.0.1", "0.0.0.0", "::", "224.0.0.1", "ff02::1",
		"255.255.255.255", "192.0.2.10", "198.18.0.1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "64:ff9b::a00:1",
		"240.0.0.1", "2001:db8::1"}
	allowed := []string{"8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"}
	var p Policy
	for _, s := range refused {
		if err := p.Check(netip.MustParseAddr(s)); !errors.Is(err, ErrRefused) {
			t.Errorf("%s allowed by the default policy", s)
		}
	}
	for _, s := range allowed {
		if err := p.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s refused: %v", s, err)
		}
	}
	p = Policy{Allow: loopback}
	if p.Check(netip.MustParseAddr("127.0.0.1")) != nil || p.Check(netip.MustParseAddr("::1")) != nil {
		t.Error("loopback refused although allowed")
	}
	if p.Check(netip.MustParseAddr("10.0.0.1")) == nil || p.Check(netip.MustParseAddr("169.254.169.254")) == nil {
		t.Error("allowing loopback opened other internal ranges")
	}
}

// fakeResolver answers from a map and never sends a packet.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host (fake resolver)")
}

// TestRefusedBeforeDial proves that internal targets are refused before a
// socket is connected: the dialer's Control hook fails the test if reached.
// No packet leaves loopback: every address here is refused before dialing.
func TestRefusedBeforeDial(t *testing.T) {
	c := NewClient(ClientOptions{
		Resolver: fakeResolver{
			"metadata.test": {netip.MustParseAddr("169.254.169.254")},
			"internal.test": {netip.MustParseAddr("10.0.0.1")},
			"mixed.test":    {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.0.0.1")},
			"mapped.test":   {netip.MustParseAddr("::ffff:10.0.0.1")},
		},
		Control: func(network, address string, _ syscall.RawConn) error {
			t.Errorf("dial reached for %s %s", network, address)
			return errors.New("test: no dial allowed")
		},
	})
	for _, u := range []string{
		"http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook", "https://10.0.0.1:8443/hook",
		"http://[::ffff:10.0.0.1]/", "http://[fd00:ec2::254]/", "http://127.0.0.1:9/", "http://[::1]:9/",
		"http://metadata.test/", "http://internal.test/", "http://mixed.test/", "http://mapped.test/",
	} {
		res := c.Post(context.Background(), u, nil, []byte("{}"))
		if !errors.Is(res.Err, ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", u, res.Err)
		}
	}
}

func TestClientNoRedirectNoProxyCap(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1") // a proxy would break the POST: it must be ignored
	followed := 0
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed++ }))
	defer target.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
			return
		}
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(strings.Repeat("x", 1<<20)))
	}))
	defer srv.Close()
	c := NewClient(ClientOptions{Policy: Policy{Allow: loopback}, MaxHead: 100})
	res := c.Post(context.Background(), srv.URL+"/redirect", nil, []byte("{}"))
	if res.Err != nil || res.StatusCode != http.StatusTemporaryRedirect || res.OK() || followed != 0 {
		t.Fatalf("redirect: %+v, followed %d", res, followed)
	}
	res = c.Post(context.Background(), srv.URL+"/big", nil, []byte("{}"))
	if !res.OK() || len(res.Head) != 100 {
		t.Fatalf("big body: ok=%v head %d bytes, want 100", res.OK(), len(res.Head))
	}
}

func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	c := NewClient(ClientOptions{Policy: Policy{Allow: loopback}, Timeout: 100 * time.Millisecond})
	res := c.Post(context.Background(), srv.URL, nil, []byte("{}"))
	if res.Err == nil || res.OK() {
		t.Fatalf("a receiver that never answers: %+v", res)
	}
}

func TestValidURL(t *testing.T) {
	for _, u := range []string{"https://a.example/x", "http://a.example:8080/"} {
		if err := ValidURL(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"ftp://a.example/", "/relative", "https://", "https://user:pw@a.example/",
		"https://a.example/" + strings.Repeat("a", 2000)} {
		if ValidURL(u) == nil {
			t.Errorf("%s accepted", u)
		}
	}
}
