package verifyd

import (
	"context"
	"time"
)

// Job states.
const (
	JobAvailable = "available"
	JobRunning   = "running"
	JobFailed    = "failed" // gave up; kept for inspection
)

// JobDeliver is the kind of a delivery job.
const JobDeliver = "deliver"

// Job is a durable unit of background work. A delivery job is inserted in
// the same transaction as its verification; its Payload holds the message
// (and the plaintext code) sealed with AEAD under the server key.
type Job struct {
	ID             string
	Kind           string
	AccountID      string
	VerificationID string
	Payload        []byte
	Attempt        int // claims so far, this one included
	MaxAttempts    int
	State          string
	RunAt          time.Time
	LockedBy       string
	LockedUntil    time.Time
	LastError      string
	CreatedAt      time.Time
	// InDoubt is set by ClaimJobs on a job whose previous claim ended
	// without an outcome (its worker died): the message may have left.
	InDoubt bool
}

// ClaimParams are the inputs of JobStore.ClaimJobs.
type ClaimParams struct {
	Worker string
	Now    time.Time
	Lease  time.Duration
	Limit  int
	// FreshOnly (webhook claims) takes only deliveries due since they were
	// written — never tried, put back or paused — the cheap ones to claim
	// while some receivers are saturated.
	FreshOnly bool
}

// DeliveryAttempt records one try of one sender for a message: every
// sender a router tried for it gets its own, in order.
type DeliveryAttempt struct {
	ID                string
	VerificationID    string
	JobID             string
	Sender            string
	ProviderMessageID string
	Parts             int
	// Outcome is a delivery status (the sender took the message: sent, or
	// later a receipt's status; sending_failed for the last try of a job
	// that failed for good), "error" (the sender failed; the next one or a
	// retry took over) or "skipped" (its circuit was open).
	Outcome string
	Error   string
	At      time.Time
}

// JobOutcome is how a worker finishes a claimed job (JobStore.FinishJobs).
type JobOutcome struct {
	JobID string
	// VerificationID is the job's (Job.VerificationID, as claimed or handed
	// off). A store may keep a handed-off job on its verification and find
	// it by this; set it.
	VerificationID string
	Worker         string
	Now            time.Time
	// Retry makes the job available again at RetryAt; otherwise it is done
	// (deleted) or, with Dead, kept in state failed.
	Retry   bool
	RetryAt time.Time
	Dead    bool
	Error   string
	// DeliveryStatus, if set, is recorded on the verification with its
	// event (sent → verify.sent; sending_failed → verify.failed).
	DeliveryStatus string
	// FailVerification turns a pending verification into error (reason
	// sending_failed, with verify.completed).
	FailVerification bool
	// Attempts are the delivery attempts of this run of the job, in order
	// (each sender a router tried, the last one being the one whose result
	// the outcome reports). They are recorded in the same transaction.
	Attempts []*DeliveryAttempt
}

// HandedOff reports whether j, inserted with its verification v, is a job
// handed to a worker in the same transaction: a delivery job of v inserted
// running, leased and never tried before (what Worker hands off). Stores
// may keep such a job apart from the queue (both do: a handoffs table),
// as long as it behaves as a claimed job in every respect.
func HandedOff(v *Verification, j *Job) bool {
	return j.State == JobRunning && j.Kind == JobDeliver && j.LockedBy != "" && !j.LockedUntil.IsZero() &&
		j.VerificationID == v.ID && j.AccountID == v.AccountID && j.RunAt.Equal(j.CreatedAt) &&
		j.LastError == "" && !j.InDoubt
}

// JobStore is the durable queue.
type JobStore interface {
	// ClaimJobs leases up to Limit due jobs to Worker until Now+Lease:
	// available jobs whose RunAt has come, and running jobs whose lease has
	// lapsed (those come back with InDoubt set). Each claim increments
	// Attempt. Oldest RunAt first.
	ClaimJobs(ctx context.Context, p ClaimParams) ([]*Job, error)
	// FinishJobs applies the outcomes of claimed jobs (a worker's batch) in
	// one transaction and returns one error per outcome. An outcome applies
	// only while its Worker still holds the job's lease: otherwise its error
	// is ErrLeaseLost and it changes nothing, and the others still apply
	// (so does a second outcome for the same job). Any other failure is the
	// error of every outcome, and nothing changes.
	FinishJobs(ctx context.Context, outs []JobOutcome) []error
	// QueueDepth returns the number of jobs not yet finished (available or
	// running).
	QueueDepth(ctx context.Context) (int, error)
}

// ErrLeaseLost means a job's lease was taken over by another worker.
var ErrLeaseLost = &Error{Code: ECONFLICT, Message: "Job lease lost."}
