package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPGRestart_NodeFailsFastAndRecovers restarts this machine's PostgreSQL
// under a verifyd node serving triggers: while it is down every request is
// answered quickly with 503 and the documented envelope (10007), the node
// never crashes, service resumes on its own, and every verification the API
// accepted is still there and delivered exactly once.
//
// It runs only with VERIFYD_TEST_PG_RESTART=1 (.ci/run sets it, alone, last).
func TestPGRestart_NodeFailsFastAndRecovers(t *testing.T) {
	if os.Getenv("VERIFYD_TEST_PG_RESTART") != "1" {
		t.Skip("restarts this machine's PostgreSQL: set VERIFYD_TEST_PG_RESTART=1 to run")
	}
	c := startCluster(t, 1)
	node := c.nodes[0]
	const bound = 7 * time.Second // the store's 5 s operation timeout and slack

	var (
		mu        sync.Mutex
		accepted  = map[string]bool{}
		ok503     atomic.Int64
		okAfter   atomic.Int64
		restarted atomic.Bool
		stop      atomic.Bool
		slowest   atomic.Int64
	)
	client := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load() && i < 100000; i++ {
				phone := fmt.Sprintf("+4474%02d%06d", 60+w, i)
				req, _ := http.NewRequest("POST", node.URL+"/v2/verifications/sms",
					strings.NewReader(`{"phone_number":"`+phone+`","verify_profile_id":"`+c.profile+`"}`))
				req.Header.Set("Authorization", "Bearer "+c.key)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := client.Do(req)
				took := time.Since(start)
				if took > time.Duration(slowest.Load()) {
					slowest.Store(int64(took))
				}
				if err != nil {
					t.Errorf("the node stopped answering: %v", err)
					stop.Store(true)
					return
				}
				var body struct {
					Data   struct{ ID string }
					Errors []struct{ Code string }
				}
				json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == 200:
					mu.Lock()
					accepted[body.Data.ID] = true
					mu.Unlock()
					if restarted.Load() {
						okAfter.Add(1)
					}
				case resp.StatusCode == 503 && len(body.Errors) == 1 && body.Errors[0].Code == "10007" &&
					resp.Header.Get("Retry-After") != "":
					ok503.Add(1)
					if took > bound {
						t.Errorf("a 503 took %v (bound %v)", took, bound)
					}
				default:
					t.Errorf("during the restart: status %d, errors %+v", resp.StatusCode, body.Errors)
				}
				if ok503.Load() > 0 && resp.StatusCode == 503 {
					time.Sleep(50 * time.Millisecond) // a client backing off, not a wait for async work
				}
			}
		}()
	}
	// Restart once traffic is flowing (a signal, not a fixed sleep).
	for waitUntil := time.Now().Add(10 * time.Second); time.Now().Before(waitUntil); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(accepted)
		mu.Unlock()
		if n >= 200 {
			break
		}
	}
	out, err := exec.Command("sh", "-c", "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -1) main restart").CombinedOutput()
	if err != nil {
		stop.Store(true)
		wg.Wait()
		t.Fatalf("restart PostgreSQL: %v\n%s", err, out)
	}
	restarted.Store(true)
	deadline := time.Now().Add(30 * time.Second)
	for okAfter.Load() < 50 && time.Now().Before(deadline) && !stop.Load() {
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if okAfter.Load() < 50 {
		t.Fatalf("service did not resume within 30 s of the restart (%d successes after it); the node's last warnings:\n%s",
			okAfter.Load(), node.recentLogs())
	}
	if code, _ := node.do(t, c.key, "GET", "/readyz", ""); code != 200 {
		t.Fatalf("/readyz after the restart: %d", code)
	}
	t.Logf("%d accepted, %d fast 503s during the outage, slowest answer %v",
		len(accepted), ok503.Load(), time.Duration(slowest.Load()))

	// Nothing accepted is lost: every verification reads back, and reaches
	// the console exactly once (jobs whose outcome could not be recorded in
	// the outage come back after their lease, in doubt, and are reconciled).
	for id := range accepted {
		if code, body := node.do(t, c.key, "GET", "/v2/verifications/"+id, ""); code != 200 {
			t.Fatalf("accepted verification %s lost: %d %v", id, code, body)
		}
	}
	waitDeliveredOnce(t, c.console, accepted, 30*time.Second)
}
