package smpp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

const to = "+4915112345678"

func TestSender_SMSC(t *testing.T) {
	smsc := startSMSC(t) // TLV receipts, DELIVRD
	k := newSink()
	s := startSender(t, testConfig(smsc.addr()), k)

	long := strings.Repeat("Long GSM text with € and [brackets] near part edges. ", 8)
	cases := []struct {
		name, text, alpha string
		coding, parts     int
	}{
		{"gsm7", "Your verification code is 123456", "Verifyd", 0, 1},
		{"extension table", "Code: [1234] {ok} €5 ~ ^ | \\ end", "", 0, 1},
		{"ucs2 russian", "Ваш код подтверждения: 123456", "Verifyd", 8, 1},
		{"long gsm7", long, "Verifyd", 0, 3},
		{"long ucs2 with emoji", strings.Repeat("Код 😀 подтверждения. ", 8), "", 8, 3},
	}
	results := map[string]*verifyd.SendResult{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := send(t, s, &verifyd.Message{ID: "m-" + c.name, To: to, Text: c.text, AlphaSender: c.alpha})
			if r.Sender != "smpp-test" || r.Status != verifyd.DeliverySent || r.Parts != c.parts || r.ProviderMessageID == "" {
				t.Fatalf("result %+v", r)
			}
			results[c.name] = r
			first := smsc.wait("submit_sm "+r.ProviderMessageID, func(e smscEvent) bool {
				return e.Event == "submit_sm" && e.MessageID == r.ProviderMessageID
			})
			parts := smsc.waitN("parts", c.parts, func(e smscEvent) bool {
				return e.Event == "submit_sm" && e.Status == 0 && e.Seq >= first.Seq && e.Seq < first.Seq+c.parts
			})
			if got := received(t, parts); got != c.text {
				t.Fatalf("SMSC decoded\n%q\nwant\n%q", got, c.text)
			}
			for _, p := range parts {
				if p.DataCoding != c.coding || p.RegisteredDelivery != 1 || p.Dest != "4915112345678" || p.DestTON != 1 || p.DestNPI != 1 {
					t.Fatalf("submit_sm %+v", p)
				}
				if c.alpha != "" && (p.SourceAddr != c.alpha || p.SourceTON != 5 || p.SourceNPI != 0) {
					t.Fatalf("alphanumeric source: %+v", p)
				}
				if c.alpha == "" && (p.SourceAddr != "15550001111" || p.SourceTON != 1 || p.SourceNPI != 1) {
					t.Fatalf("E.164 source: %+v", p)
				}
			}
		})
	}
	// Every part got a receipt, answered OK; the sink got exactly one per
	// message (first part delivered), under the SendResult id.
	resps := smsc.waitN("deliver_sm_resp", 1+1+1+3+3, is("deliver_sm_resp"))
	for _, e := range resps {
		if e.Status != 0 {
			t.Fatalf("deliver_sm_resp status %d", e.Status)
		}
	}
	got := k.waitN(t, len(cases))
	if len(got) != len(cases) {
		t.Fatalf("%d receipts, want %d: %+v", len(got), len(cases), got)
	}
	byID := map[string]verifyd.Receipt{}
	for _, r := range got {
		byID[r.ProviderMessageID] = r
	}
	for name, res := range results {
		r, ok := byID[res.ProviderMessageID]
		if !ok || r.Sender != "smpp-test" || r.Status != verifyd.DeliveryDelivered || r.Cause != "" || r.At.IsZero() {
			t.Errorf("%s: receipt %+v (ok %v)", name, r, ok)
		}
	}
}

func TestSender_TextReceiptsWithDecimalIDs(t *testing.T) {
	smsc := startSMSC(t, "SMSC_RECEIPTS=text-dec", "SMSC_DLR_STAT=UNDELIV")
	k := newSink()
	s := startSender(t, testConfig(smsc.addr()), k)
	r := send(t, s, &verifyd.Message{To: to, Text: "code 1"})
	got := k.waitN(t, 1)
	if got[0].ProviderMessageID != r.ProviderMessageID {
		t.Fatalf("receipt id %q, SendResult id %q (hex/decimal not matched)", got[0].ProviderMessageID, r.ProviderMessageID)
	}
	if got[0].Status != verifyd.DeliveryFailed || got[0].Cause != "UNDELIV err:001" {
		t.Fatalf("receipt %+v", got[0])
	}
}

func TestSender_IDFormHexDec(t *testing.T) {
	smsc := startSMSC(t, "SMSC_RECEIPTS=text-dec")
	k := newSink()
	cfg := testConfig(smsc.addr())
	cfg.IDForm = IDHexDec
	s := startSender(t, cfg, k)
	r := send(t, s, &verifyd.Message{To: to, Text: "code 2"})
	e := smsc.wait("submit_sm", is("submit_sm"))
	if want := IDHexDec.canonSubmit(e.MessageID); r.ProviderMessageID != want || want == e.MessageID {
		t.Fatalf("ProviderMessageID %q, want decimal %q of %q", r.ProviderMessageID, want, e.MessageID)
	}
	if got := k.waitN(t, 1); got[0].ProviderMessageID != r.ProviderMessageID || got[0].Status != verifyd.DeliveryDelivered {
		t.Fatalf("receipt %+v", got[0])
	}
}

func TestSender_MultipartFailure(t *testing.T) {
	smsc := startSMSC(t, "SMSC_FAIL_PART=2")
	k := newSink()
	s := startSender(t, testConfig(smsc.addr()), k)
	r := send(t, s, &verifyd.Message{To: to, Text: strings.Repeat("x", 400)})
	if r.Parts != 3 {
		t.Fatalf("parts %d", r.Parts)
	}
	smsc.waitN("3 deliver_sm_resp", 3, is("deliver_sm_resp"))
	got := k.waitN(t, 2)
	failed, delivered := 0, 0
	for _, g := range got {
		if g.ProviderMessageID != r.ProviderMessageID {
			t.Fatalf("receipt under %q, want the first part's id %q", g.ProviderMessageID, r.ProviderMessageID)
		}
		switch g.Status {
		case verifyd.DeliveryFailed:
			failed++
		case verifyd.DeliveryDelivered:
			delivered++
		}
	}
	if failed != 1 || delivered != 1 || len(got) != 2 {
		t.Fatalf("receipts %+v: want the first part's delivered and part 2's failure", got)
	}
}

func TestSender_Throttled(t *testing.T) {
	t.Run("RetriedThenAccepted", func(t *testing.T) {
		smsc := startSMSC(t, "SMSC_THROTTLE=2")
		s := startSender(t, testConfig(smsc.addr()), newSink())
		send(t, s, &verifyd.Message{To: to, Text: "hi"})
		subs := smsc.waitN("3 submits", 3, is("submit_sm"))
		if len(subs) != 3 || subs[0].Status != 0x58 || subs[1].Status != 0x58 || subs[2].Status != 0 {
			t.Fatalf("submits %+v", subs)
		}
	})
	t.Run("QueueFullRetried", func(t *testing.T) {
		smsc := startSMSC(t, "SMSC_THROTTLE=1", "SMSC_THROTTLE_STATUS=20")
		s := startSender(t, testConfig(smsc.addr()), newSink())
		send(t, s, &verifyd.Message{To: to, Text: "hi"})
		if subs := smsc.waitN("2 submits", 2, is("submit_sm")); len(subs) != 2 || subs[0].Status != 0x14 {
			t.Fatalf("submits %+v", subs)
		}
	})
	t.Run("GivesUpTransient", func(t *testing.T) {
		smsc := startSMSC(t, "SMSC_THROTTLE=10")
		cfg := testConfig(smsc.addr())
		cfg.Retries = 2
		s := startSender(t, cfg, newSink())
		_, err := s.Send(context.Background(), &verifyd.Message{To: to, Text: "hi"})
		var se *StatusError
		if err == nil || verifyd.ErrorCode(err) == verifyd.ECHANNEL || !errors.As(err, &se) || se.Status != StatusThrottled {
			t.Fatalf("err %v, want a transient throttling error", err)
		}
		if n := len(smsc.waitN("3 submits", 3, is("submit_sm"))); n != 3 {
			t.Fatalf("%d submits, want 1 + 2 retries", n)
		}
	})
}

func TestSender_PermanentRefusal(t *testing.T) {
	smsc := startSMSC(t, "SMSC_REJECT_DEST=4915100000001")
	s := startSender(t, testConfig(smsc.addr()), newSink())
	_, err := s.Send(context.Background(), &verifyd.Message{To: "+4915100000001", Text: "hi"})
	if !isStatus(err, verifyd.ECHANNEL) || !strings.Contains(verifyd.ErrorMessage(err), "ESME_RINVDSTADR") {
		t.Fatalf("err %v, want ECHANNEL naming ESME_RINVDSTADR", err)
	}
	// Refused before anything is sent.
	for _, m := range []*verifyd.Message{
		{To: "not-a-number", Text: "hi"},
		{To: to, Text: "hi", AlphaSender: "ThisIsWayTooLong"},
		{To: to, Text: strings.Repeat("a", 153*256)},
	} {
		if _, err := s.Send(context.Background(), m); !isStatus(err, verifyd.ECHANNEL) {
			t.Errorf("%+v: err %v, want ECHANNEL", m.To, err)
		}
	}
	if n := len(smsc.waitN("submit", 1, is("submit_sm"))); n != 1 {
		t.Fatalf("%d submits reached the SMSC, want 1", n)
	}
}

func TestSender_WrongPassword(t *testing.T) {
	smsc := startSMSC(t)
	var logs lockedBuffer
	cfg := testConfig(smsc.addr())
	cfg.Password = "wr0ngpw"
	cfg.ResponseTimeout = 300 * time.Millisecond
	s, err := New(cfg, newSink(), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	binds := smsc.waitN("refused binds", 2, is("bind"))
	if binds[0].Status != 0x0E || binds[1].Status != 0x0E {
		t.Fatalf("binds %+v", binds)
	}
	_, err = s.Send(context.Background(), &verifyd.Message{To: to, Text: "hi"})
	if !errors.Is(err, ErrNoBind) || verifyd.ErrorCode(err) == verifyd.ECHANNEL {
		t.Fatalf("err %v, want transient ErrNoBind", err)
	}
	s.Close()
	out := logs.String()
	if !strings.Contains(out, "ESME_RINVPASWD") {
		t.Fatalf("bind refusal not logged:\n%s", out)
	}
	if strings.Contains(out, "wr0ngpw") {
		t.Fatalf("password in logs:\n%s", out)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestSender_SilentLinkCloses(t *testing.T) {
	smsc := startSMSC(t, "SMSC_SILENT=1")
	cfg := testConfig(smsc.addr())
	cfg.EnquireInterval = 50 * time.Millisecond
	cfg.ResponseTimeout = 300 * time.Millisecond
	startSender(t, cfg, newSink())
	// Our enquire_link goes unanswered: the link is closed and rebound.
	smsc.wait("enquire_link", is("enquire_link"))
	smsc.wait("close of session 1", func(e smscEvent) bool { return e.Event == "close" && e.Session == 1 })
	smsc.wait("rebind", func(e smscEvent) bool { return e.Event == "bind" && e.Session == 2 && e.Status == 0 })
}

func TestSender_SubmitTimeout(t *testing.T) {
	smsc := startSMSC(t, "SMSC_SILENT=1")
	cfg := testConfig(smsc.addr())
	cfg.ResponseTimeout = 300 * time.Millisecond
	s := startSender(t, cfg, newSink())
	_, err := s.Send(context.Background(), &verifyd.Message{To: to, Text: "hi"})
	if !errors.Is(err, ErrResponseTimeout) || verifyd.ErrorCode(err) == verifyd.ECHANNEL {
		t.Fatalf("err %v, want a transient ErrResponseTimeout", err)
	}
	smsc.wait("close", func(e smscEvent) bool { return e.Event == "close" && e.Session == 1 })
}

func TestSender_RebindAfterDrop(t *testing.T) {
	smsc := startSMSC(t, "SMSC_DROP_AFTER=1")
	k := newSink()
	s := startSender(t, testConfig(smsc.addr()), k)
	send(t, s, &verifyd.Message{To: to, Text: "first"})
	smsc.wait("close", func(e smscEvent) bool { return e.Event == "close" && e.Session == 1 })
	smsc.wait("rebind", func(e smscEvent) bool { return e.Event == "bind" && e.Session == 2 && e.Status == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitBound(ctx); err != nil {
		t.Fatal(err)
	}
	r := send(t, s, &verifyd.Message{To: to, Text: "second"})
	e := smsc.wait("second submit", func(e smscEvent) bool { return e.Event == "submit_sm" && e.Text == "second" })
	if e.Session != 2 || e.MessageID != r.ProviderMessageID {
		t.Fatalf("second submit %+v, result %+v", e, r)
	}
	// Its receipt comes back on the new session (the first one's was lost
	// with the dropped session: this SMSC does not queue receipts).
	if g := k.waitN(t, 1); g[0].ProviderMessageID != r.ProviderMessageID || g[0].Status != verifyd.DeliveryDelivered {
		t.Fatalf("receipt %+v", g[0])
	}
}

func TestSender_AnswersSMSCRequests(t *testing.T) {
	smsc := startSMSC(t, "SMSC_PROBE=1")
	k := newSink()
	startSender(t, testConfig(smsc.addr()), k)
	if e := smsc.wait("enquire_link_resp", is("probe_enquire_link_resp")); e.Status != 0 {
		t.Fatalf("enquire_link_resp status %d", e.Status)
	}
	if e := smsc.wait("generic_nack", is("generic_nack")); e.Seq != 9001 || e.Status != 3 {
		t.Fatalf("generic_nack %+v, want seq 9001 status ESME_RINVCMDID", e)
	}
	if e := smsc.wait("malformed deliver_sm answered", func(e smscEvent) bool {
		return e.Event == "deliver_sm_resp_any" && e.Seq == 9002
	}); e.Status != int(StatusXRAppn) {
		t.Fatalf("malformed deliver_sm answered %+v", e)
	}
	if e := smsc.wait("MO answered", is("probe_mo_resp")); e.Status != 0 {
		t.Fatalf("MO deliver_sm answered %+v", e)
	}
	if n := len(k.snapshot()); n != 0 {
		t.Fatalf("%d receipts from non-receipts", n)
	}
}

func TestSender_MessagePayload(t *testing.T) {
	smsc := startSMSC(t)
	cfg := testConfig(smsc.addr())
	cfg.UseMessagePayload = true
	s := startSender(t, cfg, newSink())
	text := strings.Repeat("Payload text { } ", 20)
	r := send(t, s, &verifyd.Message{To: to, Text: text})
	subs := smsc.waitN("submit_sm", 1, is("submit_sm"))
	if len(subs) != 1 || subs[0].PayloadText == nil || *subs[0].PayloadText != text || len(subs[0].UDH) != 0 || subs[0].Text != "" {
		t.Fatalf("submits %+v", subs)
	}
	if r.Parts != 3 {
		t.Fatalf("parts %d, want 3 (what the text costs on the air)", r.Parts)
	}
}

func TestSender_TXRXSeveralBinds(t *testing.T) {
	smsc := startSMSC(t)
	k := newSink()
	cfg := testConfig(smsc.addr())
	cfg.BindMode = BindTXRX
	cfg.Binds = 2
	s := startSender(t, cfg, k)
	binds := smsc.waitN("4 binds", 4, is("bind"))
	modes := map[string]int{}
	for _, b := range binds {
		modes[b.Command]++
	}
	if modes["bind_transmitter"] != 2 || modes["bind_receiver"] != 2 {
		t.Fatalf("binds %v", modes)
	}
	for i := range 4 {
		send(t, s, &verifyd.Message{To: to, Text: "n" + string(rune('0'+i))})
	}
	sessions := map[int]bool{}
	for _, e := range smsc.waitN("4 submits", 4, is("submit_sm")) {
		sessions[e.Session] = true
	}
	if len(sessions) != 2 {
		t.Fatalf("submits spread over %d sessions, want both transmitters", len(sessions))
	}
	for _, g := range k.waitN(t, 4) {
		if g.Status != verifyd.DeliveryDelivered {
			t.Fatalf("receipt %+v", g)
		}
	}
}

func TestSender_TLS(t *testing.T) {
	dir := t.TempDir()
	pool := writeCert(t, dir)
	smsc := startSMSC(t, "SMSC_TLS_KEY="+filepath.Join(dir, "key.pem"), "SMSC_TLS_CERT="+filepath.Join(dir, "cert.pem"))
	k := newSink()
	cfg := testConfig(smsc.addr())
	cfg.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	s := startSender(t, cfg, k)
	r := send(t, s, &verifyd.Message{To: to, Text: "over TLS"})
	if got := k.waitN(t, 1); got[0].ProviderMessageID != r.ProviderMessageID {
		t.Fatalf("receipt %+v", got[0])
	}
	// A client that does not trust the certificate never binds.
	cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	cfg.ResponseTimeout = 300 * time.Millisecond
	bad := mustSender(t, cfg, k)
	if _, err := bad.Send(context.Background(), &verifyd.Message{To: to, Text: "x"}); !errors.Is(err, ErrNoBind) {
		t.Fatalf("untrusted certificate: err %v", err)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 to dir.
func writeCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test smsc"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}
