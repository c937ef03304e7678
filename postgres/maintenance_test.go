package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/storetest"
)

// TestPurgeSkipsHeldJob: a purge never waits for a job another transaction
// holds (FinishJobs holds a job, then locks its verification: a purge that
// waited for the job while holding the verification deadlocked with it).
// The verification is left for a later purge, which takes it once the job
// is released.
func TestPurgeSkipsHeldJob(t *testing.T) {
	url := testURL(t)
	schema := newSchema(t, url)
	ctx := context.Background()
	s := mustOpenSchema(t, url, schema)

	a := storetest.MustCreateAccount(t, s)
	p := storetest.MustCreateProfile(t, s, a.ID, "Main", storetest.T0)
	held := storetest.NewVerification(p, "+15550000001", storetest.T0)
	free := storetest.NewVerification(p, "+15550000002", storetest.T0)
	for _, v := range []*verifyd.Verification{held, free} {
		storetest.MustCreateVerification(t, s, v)
		if _, err := s.ExpireVerification(ctx, a.ID, v.ID, storetest.T0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}

	// Another session holds held's job, as FinishJobs does.
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+pgx.Identifier{schema, "jobs"}.Sanitize()+
		` WHERE verification_id = $1 FOR UPDATE) x`, held.ID).Scan(&n); err != nil || n != 1 {
		t.Fatalf("locking the job: %d rows, %v", n, err)
	}

	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	before := storetest.T0.Add(48 * time.Hour)
	purged, err := s.PurgeFinished(pctx, before, 100)
	if err != nil {
		t.Fatalf("PurgeFinished with a held job: %v (it waited for the job)", err)
	}
	if purged != 1 {
		t.Fatalf("PurgeFinished with a held job purged %d, want 1 (the other verification)", purged)
	}
	storetest.MustGetVerification(t, s, a.ID, held.ID)
	if _, err := s.GetVerification(ctx, a.ID, free.ID); verifyd.ErrorCode(err) != verifyd.ENOTFOUND {
		t.Fatalf("the verification without a held job was not purged: %v", err)
	}

	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if purged, err := s.PurgeFinished(pctx, before, 100); err != nil || purged != 1 {
		t.Fatalf("PurgeFinished once the job is released: %d, %v; want 1", purged, err)
	}
	if _, err := s.GetVerification(ctx, a.ID, held.ID); verifyd.ErrorCode(err) != verifyd.ENOTFOUND {
		t.Fatalf("the verification was not purged once its job was released: %v", err)
	}
}
