package witness

import (
	"math"
	"sync"
	"time"
)

// rateLimiter is a token bucket per key (a log's origin): each key may make
// burst requests at once and rate requests per second on average.
type rateLimiter struct {
	rate  float64 // tokens added per second
	burst float64 // bucket capacity
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst int, now func() time.Time) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), now: now, buckets: make(map[string]*bucket)}
}

// allow takes a token from key's bucket. When the bucket is empty it
// returns false and how long until a token is available.
func (r *rateLimiter) allow(key string) (bool, time.Duration) {
	if r.rate <= 0 {
		return true, 0
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.buckets[key]
	if !ok {
		b = &bucket{tokens: r.burst, last: now}
		r.buckets[key] = b
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = math.Min(r.burst, b.tokens+d.Seconds()*r.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / r.rate * float64(time.Second))
	return false, wait
}

// forget drops the buckets of keys for which keep returns false (logs that
// were removed from the logs file).
func (r *rateLimiter) forget(keep func(string) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.buckets {
		if !keep(k) {
			delete(r.buckets, k)
		}
	}
}
