package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestQuotaIsolation is the measurement behind docs/performance.md's
// tenant isolation figure. It runs only when EVIDENT_QUOTA_LOAD is set to
// a duration per phase (e.g. EVIDENT_QUOTA_LOAD=20s). It starts the real
// binary with a per-tenant quota (EVIDENT_QUOTA_RATE entries/s, default
// 100, burst the same), three quiet tenants that each submit at half
// their quota, open loop, waiting for receipts, and measures their
// submit-to-receipt p99:
//
//   - alone (the unloaded p99);
//   - while a fourth tenant submits at its quota;
//   - while it submits at 10× its quota (open loop: every request of its
//     schedule is sent, whatever the answers);
//   - the same on a server without quotas, for comparison.
//
// Client and server share the machine's cores.
func TestQuotaIsolation(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("EVIDENT_QUOTA_LOAD"))
	if err != nil {
		t.Skip("SKIP: set EVIDENT_QUOTA_LOAD to a duration per phase (e.g. 20s) to measure tenant isolation")
	}
	rate := 100
	if s := os.Getenv("EVIDENT_QUOTA_RATE"); s != "" {
		if rate, err = strconv.Atoi(s); err != nil || rate < 2 {
			t.Fatalf("EVIDENT_QUOTA_RATE=%q: want a number of entries a second, at least 2", s)
		}
	}
	for _, withQuota := range []bool{true, false} {
		flags := []string{"--max_backlog", "100000"}
		if withQuota {
			flags = append(flags, "--tenant_rate", strconv.Itoa(rate), "--tenant_burst", strconv.Itoa(rate))
		}
		dir := filepath.Join(t.TempDir(), "data")
		s := startServer(t, dir, flags...)
		keys := map[string]string{}
		for _, tenant := range []string{"quiet1", "quiet2", "quiet3", "noisy"} {
			if code, out, errOut := admin(t, "tenant", "add", "--data_dir", dir, tenant); code != 0 {
				t.Fatalf("tenant add: %s%s", out, errOut)
			}
			code, out, errOut := admin(t, "key", "issue", "--data_dir", dir, tenant, "submit")
			if code != 0 {
				t.Fatalf("key issue: %s", errOut)
			}
			keys[tenant] = strings.TrimSpace(out)
		}
		time.Sleep(time.Second) // every key loaded
		label := "quota " + strconv.Itoa(rate) + "/s"
		if !withQuota {
			label = "no quota"
		}
		for _, noisy := range []int{0, 1, 10} {
			if !withQuota && noisy != 10 {
				continue
			}
			res := runTenants(t, s, keys, rate, noisy, d)
			for _, tenant := range []string{"quiet1", "quiet2", "quiet3", "noisy"} {
				r, ok := res[tenant]
				if !ok {
					continue
				}
				fmt.Printf("evident-server quota isolation: %-11s noisy at %2d× %-7s sent %6d  2xx %6d  429 %6d  other %4d  p50 %6.1f ms  p99 %6.1f ms\n",
					label, noisy, tenant, r.sent, len(r.lat), r.refused, r.errors, ms(pct(r.lat, 0.50)), ms(pct(r.lat, 0.99)))
				if !strings.HasPrefix(tenant, "quiet") || !withQuota {
					continue // without quotas a flood may fail anyone: that is the comparison
				}
				if r.errors > 0 || r.refused > 0 {
					t.Errorf("%s, quiet tenant %s: %d refused, %d errors; want every entry accepted", label, tenant, r.refused, r.errors)
				}
			}
			var all []time.Duration
			for _, q := range []string{"quiet1", "quiet2", "quiet3"} {
				all = append(all, res[q].lat...)
			}
			fmt.Printf("evident-server quota isolation: %-11s noisy at %2d× quiet tenants together: p50 %6.1f ms  p99 %6.1f ms (%d entries, %s)\n",
				label, noisy, ms(pct(all, 0.50)), ms(pct(all, 0.99)), len(all), d)
		}
		if err := s.terminate(); err != nil {
			t.Fatal(err)
		}
	}
}

// tenantResult is what one tenant's submitter saw.
type tenantResult struct {
	sent, refused, errors int
	lat                   []time.Duration // of the 2xx answers
}

// runTenants submits for d, open loop, waiting for receipts: each quiet
// tenant at half of rate, and the noisy tenant at noisy × rate (0: not at
// all).
// Every request of a tenant's schedule is sent on time, whatever the
// answers to earlier ones.
func runTenants(t *testing.T, s *server, keys map[string]string, rate, noisy int, d time.Duration) map[string]*tenantResult {
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 4096}}
	out := map[string]*tenantResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var seq atomic.Int64
	send := func(tenant string, r *tenantResult) {
		entry := fmt.Appendf(nil, "%s entry %d %d", tenant, seq.Add(1), time.Now().UnixNano())
		start := time.Now()
		code, h, err := s.addRawKey(client, keys[tenant], entry)
		took := time.Since(start)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil && code == 200:
			r.lat = append(r.lat, took)
		case err == nil && code == 429 && h.Get("Retry-After") != "":
			r.refused++
		default:
			r.errors++
		}
	}
	run := func(tenant string, perSecond int) {
		r := &tenantResult{}
		mu.Lock()
		out[tenant] = r
		mu.Unlock()
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		start := time.Now()
		for end := start.Add(d); time.Now().Before(end); {
			<-tick.C
			// Catch up with the schedule when the ticker fell behind.
			due := int(time.Since(start).Seconds() * float64(perSecond))
			for ; r.sent < due; r.sent++ {
				wg.Go(func() { send(tenant, r) })
			}
		}
	}
	var senders sync.WaitGroup
	for _, q := range []string{"quiet1", "quiet2", "quiet3"} {
		senders.Go(func() { run(q, max(1, rate/2)) })
	}
	if noisy > 0 {
		senders.Go(func() { run("noisy", noisy*rate) })
	}
	senders.Wait()
	wg.Wait()
	return out
}

// addRawKey submits entry with key, waiting for its receipt.
func (s *server) addRawKey(client *http.Client, key string, entry []byte) (int, http.Header, error) {
	req, err := http.NewRequest("POST", s.URL+"/v1/add-entry", strings.NewReader(string(entry)))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header, err
}

// pct is the p-th quantile of ds (0 when empty).
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}
