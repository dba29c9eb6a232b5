package load

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Metrics is one scrape of a Prometheus text endpoint: each sample by its full
// series name (labels included, as written).
type Metrics map[string]float64

// Scrape reads url (a /metrics endpoint).
func Scrape(ctx context.Context, client *http.Client, url string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("scrape %s: HTTP %d", url, resp.StatusCode)
	}
	m := Metrics{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return m, nil
}

// Get returns a sample (0 when absent).
func (m Metrics) Get(name string) float64 { return m[name] }

// Sum adds every series whose name starts with prefix (e.g. all reasons of a
// labelled counter).
func (m Metrics) Sum(prefix string) float64 {
	var s float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			s += v
		}
	}
	return s
}

type bucket struct {
	le  float64
	cum float64
}

func (m Metrics) buckets(hist string) []bucket {
	var out []bucket
	p := hist + `_bucket{le="`
	for k, v := range m {
		if !strings.HasPrefix(k, p) {
			continue
		}
		s := strings.TrimSuffix(k[len(p):], `"}`)
		le := math.Inf(1)
		if s != "+Inf" {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				continue
			}
			le = f
		}
		out = append(out, bucket{le, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].le < out[j].le })
	return out
}

// HistQuantile estimates quantile q of histogram hist over the observations made
// between before and after (a delta of two scrapes), interpolating linearly inside
// the bucket that holds it, as Prometheus' histogram_quantile does. It returns the
// count of observations too.
func HistQuantile(before, after Metrics, hist string, q float64) (time.Duration, float64) {
	a, b := after.buckets(hist), before.buckets(hist)
	prev := map[float64]float64{}
	for _, x := range b {
		prev[x.le] = x.cum
	}
	for i := range a {
		a[i].cum -= prev[a[i].le]
	}
	if len(a) == 0 || a[len(a)-1].cum <= 0 {
		return 0, 0
	}
	total := a[len(a)-1].cum
	rank := q * total
	lower, lowerCum := 0.0, 0.0
	for _, x := range a {
		if x.cum >= rank {
			if math.IsInf(x.le, 1) {
				return time.Duration(lower * float64(time.Second)), total
			}
			frac := 0.0
			if x.cum > lowerCum {
				frac = (rank - lowerCum) / (x.cum - lowerCum)
			}
			return time.Duration((lower + (x.le-lower)*frac) * float64(time.Second)), total
		}
		lower, lowerCum = x.le, x.cum
	}
	return time.Duration(lower * float64(time.Second)), total
}
