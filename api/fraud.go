package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/fraud"
	"github.com/verifyd/verifyd/internal/metrics"
	"github.com/verifyd/verifyd/service"
)

// Extension headers of the abuse controls (README "Abuse and fraud
// controls"): the end-user context of D14, the bot-check token of profiles
// that require one, and the duplicate-POST markers of D13.
const (
	headerEndUserIP      = "Verifyd-End-User-IP"
	headerEndUserSession = "Verifyd-End-User-Session"
	headerCaptchaToken   = "Verifyd-Captcha-Token"
	headerIdempotencyKey = "Idempotency-Key"
	headerRetryCount     = "X-Stainless-Retry-Count"
	headerReplayed       = "Idempotent-Replayed"
)

// withEndUser puts the request's end-user context on r (only when a header
// of it is present: the common request allocates nothing).
func withEndUser(r *http.Request) *http.Request {
	h := r.Header
	eu := service.EndUser{IP: h.Get(headerEndUserIP), Session: h.Get(headerEndUserSession), CaptchaToken: h.Get(headerCaptchaToken)}
	if n, err := strconv.Atoi(h.Get(headerRetryCount)); err == nil && n > 0 {
		eu.Retry = true
	}
	if eu == (service.EndUser{}) {
		return r
	}
	// Bound what reaches limiter keys.
	eu.IP, eu.Session = clip(eu.IP, 64), clip(eu.Session, 128)
	return r.WithContext(service.WithEndUser(r.Context(), eu))
}

func clip(s string, n int) string {
	if len(s) > n {
		sum := sha256.Sum256([]byte(s))
		return "sha256:" + hex.EncodeToString(sum[:16])
	}
	return s
}

// triggerReplayable answers a trigger that carries an Idempotency-Key: the
// stored first answer when the key was seen, else a new verification whose
// answer is stored with it (D13).
func (s *Server) triggerReplayable(w http.ResponseWriter, r *http.Request, acct *verifyd.Account, key string, req service.TriggerRequest, customCode *string) error {
	respond := func(v *verifyd.Verification) ([]byte, error) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		err := enc.Encode(data[verificationJSON]{toVerification(v, customCode)})
		return buf.Bytes(), err
	}
	v, replay, err := s.svc.TriggerReplayable(r.Context(), acct, req, &service.Replay{Key: key, Respond: respond})
	if err != nil {
		return err
	}
	if v != nil {
		writeJSON(w, http.StatusOK, data[verificationJSON]{toVerification(v, customCode)})
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(headerReplayed, "true")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(replay)
	return nil
}

// Admin API: fraud blocks and monitor-mode figures, for the operator (not
// an account: blocks are per prefix and global). Authenticated by the
// --admin-token bearer (Options.AdminToken, else the service's); without
// one configured the routes answer 404.

// adminRoutes wires the operator routes.
func (s *Server) adminRoutes(m *http.ServeMux) {
	m.Handle("GET /v2/admin/fraud/blocks", s.admin(s.handleBlockList))
	m.Handle("POST /v2/admin/fraud/blocks", s.admin(s.handleBlockCreate))
	m.Handle("DELETE /v2/admin/fraud/blocks/{prefix}", s.admin(s.handleBlockLift))
	m.Handle("GET /v2/admin/fraud/stats", s.admin(s.handleFraudStats))
}

// admin authenticates the operator's token in constant time.
func (s *Server) admin(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := s.adminToken
		if token == "" {
			token = s.svc.AdminToken()
		}
		if token == "" {
			s.writeError(w, r, errRouteNotFound)
			return
		}
		got, want := sha256.Sum256([]byte(bearer(r))), sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			s.writeError(w, r, &verifyd.Error{Code: verifyd.EUNAUTHORIZED, Message: "The admin token is missing or wrong."})
			return
		}
		stateOf(r.Context()).accountID = "admin"
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

type blockJSON struct {
	RecordType  string          `json:"record_type"`
	Prefix      string          `json:"prefix"`
	Start       string          `json:"start"`
	Until       string          `json:"until"`
	Manual      bool            `json:"manual"`
	MonitorOnly bool            `json:"monitor_only"`
	Level       int             `json:"level"`
	Reason      string          `json:"reason"`
	Evidence    *fraud.Evidence `json:"evidence,omitempty"`
	LiftedAt    *string         `json:"lifted_at,omitempty"`
}

func toBlock(b fraud.Block) blockJSON {
	j := blockJSON{RecordType: "fraud_block", Prefix: b.Prefix, Start: verifyd.FormatTime(b.Start), Until: verifyd.FormatTime(b.Until),
		Manual: b.Manual, MonitorOnly: b.MonitorOnly, Level: b.Level, Reason: b.Reason}
	if !b.Manual {
		ev := b.Evidence
		j.Evidence = &ev
	}
	if !b.LiftedAt.IsZero() {
		t := verifyd.FormatTime(b.LiftedAt)
		j.LiftedAt = &t
	}
	return j
}

func (s *Server) handleBlockList(w http.ResponseWriter, r *http.Request) error {
	bs, err := s.svc.FraudBlocks(r.Context())
	if err != nil {
		return err
	}
	out := make([]blockJSON, len(bs))
	for i, b := range bs {
		out[i] = toBlock(b)
	}
	writeJSON(w, http.StatusOK, data[[]blockJSON]{out})
	return nil
}

type blockBody struct {
	Prefix       *string `json:"prefix"`
	Reason       *string `json:"reason"`
	DurationSecs *int    `json:"duration_secs"`
}

func (s *Server) handleBlockCreate(w http.ResponseWriter, r *http.Request) error {
	var b blockBody
	if err := decode(r, &b); err != nil {
		return err
	}
	if err := required(requiredField{"prefix", b.Prefix != nil}, requiredField{"reason", b.Reason != nil},
		requiredField{"duration_secs", b.DurationSecs != nil}); err != nil {
		return err
	}
	blk, err := s.svc.BlockPrefix(r.Context(), *b.Prefix, *b.Reason, time.Duration(*b.DurationSecs)*time.Second)
	if err != nil {
		if e, ok := err.(*verifyd.Error); ok && e.Pointer == "/duration" {
			return e.At("/duration_secs")
		}
		return err
	}
	writeJSON(w, http.StatusOK, data[blockJSON]{toBlock(blk)})
	return nil
}

func (s *Server) handleBlockLift(w http.ResponseWriter, r *http.Request) error {
	blk, err := s.svc.LiftBlock(r.Context(), r.PathValue("prefix"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, data[blockJSON]{toBlock(blk)})
	return nil
}

type fraudStatsJSON struct {
	RecordType      string `json:"record_type"`
	MonitorBlocks   int64  `json:"monitor_blocks"`
	MonitorRefusals int64  `json:"monitor_refusals"`
	ActiveBlocks    int    `json:"active_blocks"`
	Scope           string `json:"scope"`
}

func (s *Server) handleFraudStats(w http.ResponseWriter, r *http.Request) error {
	mb, mr, err := s.svc.FraudMonitorStats()
	if err != nil {
		return err
	}
	bs, err := s.svc.FraudBlocks(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, data[fraudStatsJSON]{fraudStatsJSON{RecordType: "fraud_stats", MonitorBlocks: mb,
		MonitorRefusals: mr, ActiveBlocks: len(bs), Scope: "monitor counters: this node since start; blocks: cluster"}})
	return nil
}

// fraudMetrics are the guards' Prometheus counters.
type fraudMetrics struct {
	refusals *prometheus.CounterVec
	blocks   *prometheus.CounterVec
	spend    *prometheus.CounterVec
}

func newFraudMetrics(reg prometheus.Registerer) *fraudMetrics {
	m := &fraudMetrics{
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifyd_guard_refusals_total",
			Help: "Triggers and checks refused by a guard, by reason code (V0001 destination, V0002 number type, V0003 rate limit, V0004 prefix block, V0005 spend, V0010 bot check, unavailable).",
		}, []string{"reason"}),
		blocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifyd_fraud_blocks_total",
			Help: "Prefix blocks recorded by the conversion guard on this node, by mode (enforced, monitor).",
		}, []string{"mode"}),
		spend: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifyd_spend_alerts_total",
			Help: "Profiles whose daily spend reached 80 or 100 percent of daily_spend_limit.",
		}, []string{"percent"}),
	}
	if reg != nil {
		m.refusals = metrics.Register(reg, m.refusals)
		m.blocks = metrics.Register(reg, m.blocks)
		m.spend = metrics.Register(reg, m.spend)
	}
	return m
}

var _ service.GuardObserver = (*Metrics)(nil)

// Refused counts a guard's refusal (service.GuardObserver).
func (m *Metrics) Refused(code string) { m.fraud.refusals.WithLabelValues(code).Inc() }

// FraudBlock counts an automatic block (wire it to fraud.Config.OnBlock).
func (m *Metrics) FraudBlock(b fraud.Block) {
	mode := "enforced"
	if b.MonitorOnly {
		mode = "monitor"
	}
	m.fraud.blocks.WithLabelValues(mode).Inc()
}

// SpendAlert counts a spend threshold crossing (wire it to
// fraud.Config.OnSpend).
func (m *Metrics) SpendAlert(a fraud.SpendAlert) {
	m.fraud.spend.WithLabelValues(strconv.Itoa(a.Percent)).Inc()
}
