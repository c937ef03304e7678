package sqlite

import (
	"context"
	"time"

	"github.com/verifyd/verifyd"
)

const verificationCols = `id, account_id, profile_id, type, phone_number, code_hash, custom_code, extension,
	timeout_secs, status, attempts, completion_reason, delivery_status, created_at, updated_at, expires_at`

func scanVerification(r rowScanner) (*verifyd.Verification, error) {
	var v verifyd.Verification
	var created, updated, expires int64
	if err := r.Scan(&v.ID, &v.AccountID, &v.ProfileID, &v.Type, &v.PhoneNumber, &v.CodeHash, &v.CustomCode,
		&v.Extension, &v.TimeoutSecs, &v.Status, &v.Attempts, &v.CompletionReason, &v.DeliveryStatus,
		&created, &updated, &expires); err != nil {
		return nil, err
	}
	v.CreatedAt, v.UpdatedAt, v.ExpiresAt = fromTM(created), fromTM(updated), fromTM(expires)
	return &v, nil
}

// getVerification reads one verification in the batch transaction with
// query, one of the wq* queries (their first column is seq); nil if there
// is none.
func (w *wtx) getVerification(query string, args ...any) (*verifyd.Verification, error) {
	var v *verifyd.Verification
	_, err := w.queryRow(w.scanSeq(&v, nil), query, args...)
	return v, err
}

// scanSeq returns a scan of seq, the verification columns and extra into
// *v, remembering the row's seq (see wtx.seqs).
func (w *wtx) scanSeq(v **verifyd.Verification, extra any) func(rowScanner) error {
	return func(r rowScanner) error {
		var seq int64
		var sc rowScanner = seqScanner{r, &seq}
		if extra != nil {
			sc = seqScanner{extraScanner{r, extra}, &seq}
		}
		var err error
		if *v, err = scanVerification(sc); err != nil {
			return err
		}
		w.seqs[(*v).ID] = seq
		return nil
	}
}

// where addresses v's row: by seq (the rowid) when the batch knows it,
// else by id through its index. It returns the clause and its argument.
func (w *wtx) where(v *verifyd.Verification) (string, any) {
	if seq, ok := w.seqs[v.ID]; ok {
		return ` WHERE seq = ?`, seq
	}
	return ` WHERE id = ?`, v.ID
}

const (
	fromByID = ` FROM verifications WHERE id = ? AND account_id = ?`
	// The newest verification of (profile, phone), by created_at then id.
	fromNewest = ` FROM verifications WHERE profile_id = ? AND phone_number = ? AND account_id = ?
		ORDER BY created_at DESC, id DESC LIMIT 1`

	qVerificationByID   = `SELECT ` + verificationCols + fromByID
	qNewestVerification = `SELECT ` + verificationCols + fromNewest
	// The writer's versions: seq first (getVerification).
	wqVerificationByID   = `SELECT seq, ` + verificationCols + fromByID
	wqNewestVerification = `SELECT seq, ` + verificationCols + fromNewest
	wqVerificationBySeq  = `SELECT seq, ` + verificationCols + ` FROM verifications WHERE seq = ?`
)

// The updates below each write only the columns their change touches:
// SQLite rewrites every index whose key or WHERE clause names a column in
// SET, and status is in the partial index.

// saveCompletion writes what complete changes: status, reason, attempts
// (an accept counts one), delivery status (D33) and updated_at.
func (w *wtx) saveCompletion(v *verifyd.Verification) error {
	where, key := w.where(v)
	_, err := w.exec(`UPDATE verifications SET status = ?, attempts = ?, completion_reason = ?, delivery_status = ?,
		updated_at = ?`+where, v.Status, v.Attempts, v.CompletionReason, v.DeliveryStatus, tm(v.UpdatedAt), key)
	return err
}

// saveAttempts writes Attempts and UpdatedAt of v (a counted reject that
// leaves it pending).
func (w *wtx) saveAttempts(v *verifyd.Verification) error {
	where, key := w.where(v)
	_, err := w.exec(`UPDATE verifications SET attempts = ?, updated_at = ?`+where, v.Attempts, tm(v.UpdatedAt), key)
	return err
}

// saveDelivery writes DeliveryStatus and UpdatedAt of v.
func (w *wtx) saveDelivery(v *verifyd.Verification) error {
	where, key := w.where(v)
	_, err := w.exec(`UPDATE verifications SET delivery_status = ?, updated_at = ?`+where,
		v.DeliveryStatus, tm(v.UpdatedAt), key)
	return err
}

// event records the event typ of v at now if v's profile has a webhook_url:
// an event exists to be delivered to it (D32), so a profile without one
// records none (and its verifications cost no event row, payload or
// index entries).
func (w *wtx) event(typ string, v *verifyd.Verification, now time.Time) error {
	if hooked, err := w.hooked(v.ProfileID); err != nil || !hooked {
		return err
	}
	return w.insertEvent(verifyd.NewEvent(typ, v, now))
}

// hooked reports whether the profile has a webhook_url, as this pass of
// the batch sees it: looked up once per pass and forgotten whenever the
// batch writes a profile or rolls an operation back (w.hooks).
func (w *wtx) hooked(profileID string) (bool, error) {
	if h, ok := w.hooks[profileID]; ok {
		return h, nil
	}
	var h bool
	if _, err := w.queryRow(func(r rowScanner) error { return r.Scan(&h) },
		`SELECT webhook_url != '' FROM profiles WHERE id = ?`, profileID); err != nil {
		return false, err
	}
	w.hooks[profileID] = h
	return h, nil
}

// insertEvent appends e to the event log, keyed by its verification's seq
// (known to the batch, or looked up by id), pending delivery to its
// profile's webhook (no row if the profile has none).
func (w *wtx) insertEvent(e *verifyd.Event) error {
	var seq any = e.VerificationID
	q := qInsertEventByID
	if n, ok := w.seqs[e.VerificationID]; ok {
		seq, q = n, qInsertEventSeq
	}
	_, err := w.exec(q, e.ID, e.AccountID, e.ProfileID, e.VerificationID, seq, e.Type, tm(e.OccurredAt), e.Payload)
	return err
}

// The event insert, with ?5 the verification's seq or its id.
const (
	qInsertEventSeq  = insertEventHead + `?5` + insertEventTail
	qInsertEventByID = insertEventHead + `(SELECT seq FROM verifications WHERE id = ?5)` + insertEventTail

	insertEventHead = `INSERT INTO events (id, account_id, profile_id, verification_id, verification_seq, type,
		occurred_at, payload, wh_state, wh_next_at) SELECT ?1, ?2, ?3, ?4, `
	insertEventTail = `, ?6, ?7, ?8, 'pending', p.wh_paused_until
		FROM profiles p WHERE p.id = ?3 AND p.webhook_url != ''`
)

// complete moves v out of pending to status with reason at now (a delivery
// still only sent becomes delivery_unconfirmed, D33), saves it and writes
// its verify.completed event.
func (w *wtx) complete(v *verifyd.Verification, status verifyd.Status, reason string, now time.Time) error {
	v.Status, v.CompletionReason, v.UpdatedAt = status, reason, now
	v.DeliveryStatus = verifyd.CompletedDeliveryStatus(v.DeliveryStatus)
	if err := w.saveCompletion(v); err != nil {
		return err
	}
	return w.event(verifyd.EventCompleted, v, now)
}

// expireByTime records v expired (timed_out) if it is pending past expiry.
func (w *wtx) expireByTime(v *verifyd.Verification, now time.Time) error {
	if v == nil || !v.PendingExpired(now) {
		return nil
	}
	return w.complete(v, verifyd.StatusExpired, verifyd.ReasonTimedOut, now)
}

// CreateVerification expires by time the newest verification of (profile,
// phone), calls Guard, supersedes a pending newest one (its Attempts carry
// over to p.Verification), and inserts the verification and its job, all in
// one transaction. A Guard error keeps only the time expiry.
func (s *Store) CreateVerification(ctx context.Context, p verifyd.CreateParams) (*verifyd.Verification, error) {
	v, j, now := p.Verification, p.Job, p.Now
	if v == nil || j == nil {
		return nil, verifyd.Errorf(verifyd.EINTERNAL, "Verification and job are required.")
	}
	var superseded *verifyd.Verification
	var nv verifyd.Verification
	var nj verifyd.Job
	err := s.write(ctx, func(w *wtx) error {
		superseded = nil
		newest, err := w.getVerification(wqNewestVerification, v.ProfileID, v.PhoneNumber, v.AccountID)
		if err != nil {
			return err
		}
		if err := w.expireByTime(newest, now); err != nil {
			return err
		}
		if p.Guard != nil {
			if err := p.Guard(newest); err != nil {
				return &keep{err}
			}
		}
		if newest != nil && newest.Status == verifyd.StatusPending {
			if err := w.complete(newest, verifyd.StatusExpired, verifyd.ReasonSuperseded, now); err != nil {
				return err
			}
			superseded = newest
		}
		nv, nj = p.Rows(newest, superseded)
		if _, err := w.exec(`INSERT INTO verifications (`+verificationCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			nv.ID, nv.AccountID, nv.ProfileID, nv.Type, nv.PhoneNumber, nv.CodeHash, b2i(nv.CustomCode), nv.Extension,
			nv.TimeoutSecs, nv.Status, nv.Attempts, nv.CompletionReason, nv.DeliveryStatus,
			tm(nv.CreatedAt), tm(nv.UpdatedAt), tm(nv.ExpiresAt)); err != nil {
			return err
		}
		// A handed-off job is kept in handoffs (handoff.go).
		insertJob := w.insertJob
		if verifyd.HandedOff(&nv, &nj) {
			insertJob = w.insertHandoff
		}
		if err := insertJob(&nj); err != nil {
			return err
		}
		if r, err := p.IdempotencyRow(&nv); r != nil || err != nil {
			if err != nil {
				return err
			}
			return w.insertIdempotency(r, now)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The caller sees the stored state (IDs, carried Attempts) once committed.
	*v, *j = nv, nj
	return superseded, nil
}

// GetVerification returns the verification as stored, or ENOTFOUND.
func (s *Store) GetVerification(ctx context.Context, accountID, id string) (*verifyd.Verification, error) {
	var v *verifyd.Verification
	err := s.queryRow(ctx, func(r rowScanner) (err error) { v, err = scanVerification(r); return err },
		qVerificationByID, id, accountID)
	return v, err
}

// ListVerificationsByPhone returns the account's verifications for phone
// over every profile, newest first (created_at, id), and the total.
func (s *Store) ListVerificationsByPhone(ctx context.Context, accountID, phone string, offset, limit int) ([]*verifyd.Verification, int, error) {
	if limit <= 0 {
		limit = -1
	}
	var total int
	var list []*verifyd.Verification
	// Deleted profiles too: their verifications are still the account's.
	rows, err := s.query(ctx, `SELECT `+verificationCols+`, count(*) OVER () FROM verifications
		WHERE profile_id IN (SELECT id FROM profiles WHERE account_id = ?1) AND phone_number = ?2 AND account_id = ?1
		ORDER BY created_at DESC, id DESC LIMIT ?3 OFFSET ?4`, accountID, phone, limit, max(offset, 0))
	if err != nil {
		return nil, 0, err
	}
	list, err = collect(s, rows, func(r rowScanner) (*verifyd.Verification, error) {
		return scanVerification(countScanner{r, &total})
	})
	if err != nil {
		return nil, 0, err
	}
	if len(list) == 0 && offset > 0 {
		err := s.queryRow(ctx, func(r rowScanner) error { return r.Scan(&total) },
			`SELECT count(*) FROM verifications
			WHERE profile_id IN (SELECT id FROM profiles WHERE account_id = ?1) AND phone_number = ?2 AND account_id = ?1`,
			accountID, phone)
		if err != nil {
			return nil, 0, err
		}
	}
	return list, total, nil
}

// ExpireVerification records a pending verification past its expiry at now
// as expired (timed_out, with its event) and returns it as stored after.
func (s *Store) ExpireVerification(ctx context.Context, accountID, id string, now time.Time) (*verifyd.Verification, error) {
	v, err := s.GetVerification(ctx, accountID, id)
	if err != nil || !v.PendingExpired(now) {
		return v, err // nothing to write: spare the writer
	}
	err = s.write(ctx, func(w *wtx) error {
		if v, err = w.getVerification(wqVerificationByID, id, accountID); err != nil {
			return err
		}
		if v == nil {
			return &keep{verifyd.ErrNotFound} // nothing written: no rollback
		}
		return w.expireByTime(v, now)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// ExpirePending records up to limit pending verifications past expiry at
// now as expired (with events); returns how many.
func (s *Store) ExpirePending(ctx context.Context, now time.Time, limit int) (int, error) {
	var n int
	err := s.write(ctx, func(w *wtx) error {
		n = 0
		rows, err := w.query(`SELECT `+verificationCols+` FROM verifications
			WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at LIMIT ?`, tm(now), limit)
		if err != nil {
			return err
		}
		due, err := collect(s, rows, scanVerification)
		if err != nil {
			return err
		}
		for _, v := range due {
			if err := w.complete(v, verifyd.StatusExpired, verifyd.ReasonTimedOut, now); err != nil {
				return err
			}
		}
		n = len(due)
		return nil
	})
	return n, err
}

// ListEvents returns the events of one verification, oldest first.
func (s *Store) ListEvents(ctx context.Context, accountID, verificationID string) ([]*verifyd.Event, error) {
	rows, err := s.query(ctx, `SELECT id, account_id, profile_id, verification_id, type, occurred_at, payload
		FROM events WHERE verification_seq = (SELECT seq FROM verifications WHERE id = ?1 AND account_id = ?2)
		AND account_id = ?2 ORDER BY seq`, verificationID, accountID)
	if err != nil {
		return nil, err
	}
	return collect(s, rows, func(r rowScanner) (*verifyd.Event, error) {
		var e verifyd.Event
		var at int64
		if err := r.Scan(&e.ID, &e.AccountID, &e.ProfileID, &e.VerificationID, &e.Type, &at, &e.Payload); err != nil {
			return nil, err
		}
		e.OccurredAt = fromTM(at)
		return &e, nil
	})
}
