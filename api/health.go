package api

import (
	"context"
	"net/http"
	"time"
)

type healthStatus struct {
	Status string `json:"status"`
}

// handleHealthz answers 200 while the process serves (liveness).
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, healthStatus{Status: "ok"})
}

// handleReadyz answers 200 when the store answers, else 503 (readiness).
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.svc.Ready(ctx); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, healthStatus{Status: "ready"})
}
