package models

import (
	"fmt"
	"math"
)

// A/B test metrics: what a variant's rate counts.
const (
	MetricOpens  = "opens"  // unique human opens per message sent
	MetricClicks = "clicks" // unique human clicks per message sent
	MetricCTO    = "cto"    // unique human clickers per unique human reader (click-to-open)
)

// MetricName is a metric's name for people.
func MetricName(m string) string {
	switch m {
	case MetricOpens:
		return "open rate"
	case MetricClicks:
		return "click rate"
	case MetricCTO:
		return "click-to-open rate"
	}
	return m
}

// z95 is the standard normal quantile of 97.5%: a two-sided 95% interval.
const z95 = 1.959963984540054

// Significance is the p-value under which a difference is called
// significant.
const Significance = 0.05

// WilsonInterval is the Wilson score interval of x successes in n trials
// for the normal quantile z (z95 for 95%). It stays inside [0, 1] and is
// sound for small n and for rates near 0 or 1, where the textbook
// p ± z·√(p(1−p)/n) is not. n = 0 gives [0, 1].
func WilsonInterval(x, n int64, z float64) (lo, hi float64) {
	if n <= 0 {
		return 0, 1
	}
	nf := float64(n)
	p := float64(x) / nf
	z2 := z * z
	den := 1 + z2/nf
	center := (p + z2/(2*nf)) / den
	half := z * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf)) / den
	return math.Max(0, center-half), math.Min(1, center+half)
}

// TwoProportionZ is the pooled two-proportion z-test of x1/n1 against
// x2/n2: z > 0 when the first rate is higher, and the two-sided p-value.
// With no trials on a side, or no variation at all, z is 0 and p is 1.
func TwoProportionZ(x1, n1, x2, n2 int64) (z, p float64) {
	if n1 <= 0 || n2 <= 0 {
		return 0, 1
	}
	p1, p2 := float64(x1)/float64(n1), float64(x2)/float64(n2)
	pool := float64(x1+x2) / float64(n1+n2)
	se := math.Sqrt(pool * (1 - pool) * (1/float64(n1) + 1/float64(n2)))
	if se == 0 {
		return 0, 1
	}
	z = (p1 - p2) / se
	return z, math.Erfc(math.Abs(z) / math.Sqrt2)
}

// VariantResult is one variant's figures in an A/B test.
type VariantResult struct {
	Idx   int    `json:"idx"`
	Label string `json:"label"`
	// Sent messages of the variant's test share, and of those the ones
	// opened and clicked by people (machine opens and scanner clicks left
	// out), each delivery counted once.
	Sent   int64 `json:"sent"`
	Opens  int64 `json:"opens"`
	Clicks int64 `json:"clicks"`
	// Trials and Successes are the metric's denominator and numerator;
	// Rate their ratio, Low and High its 95% Wilson interval.
	Trials    int64   `json:"trials"`
	Successes int64   `json:"successes"`
	Rate      float64 `json:"rate"`
	Low       float64 `json:"low"`
	High      float64 `json:"high"`
}

// ABAnalysis is an A/B test's figures and verdict.
type ABAnalysis struct {
	Metric   string          `json:"metric"`
	Variants []VariantResult `json:"variants"`
	// Best and RunnerUp are the variants (Idx) with the highest and second
	// highest rate (ties: the earlier variant); 0 when there is none.
	Best     int `json:"best"`
	RunnerUp int `json:"runner_up"`
	// Z and P are the two-proportion test of Best against RunnerUp.
	Z           float64 `json:"z"`
	P           float64 `json:"p"`
	Significant bool    `json:"significant"`
	// Verdict says in words what the figures show, significance included.
	Verdict string `json:"verdict"`
}

// AnalyseAB computes each variant's rate for the metric with its interval,
// and tests the best against the runner-up. Click-to-open counts the
// people who clicked among those who opened or clicked (a click proves
// the message was read, images blocked or not), so it stays a proportion.
func AnalyseAB(metric string, vs []VariantResult) ABAnalysis {
	a := ABAnalysis{Metric: metric, Variants: make([]VariantResult, len(vs)), P: 1}
	copy(a.Variants, vs)
	for i := range a.Variants {
		v := &a.Variants[i]
		switch metric {
		case MetricOpens:
			v.Trials, v.Successes = v.Sent, v.Opens
		case MetricCTO:
			v.Trials, v.Successes = max(v.Opens, v.Clicks), v.Clicks
		default:
			v.Trials, v.Successes = v.Sent, v.Clicks
		}
		if v.Trials > 0 {
			v.Rate = float64(v.Successes) / float64(v.Trials)
		}
		v.Low, v.High = WilsonInterval(v.Successes, v.Trials, z95)
	}
	var best, second *VariantResult
	for i := range a.Variants {
		v := &a.Variants[i]
		switch {
		case best == nil || v.Rate > best.Rate:
			best, second = v, best
		case second == nil || v.Rate > second.Rate:
			second = v
		}
	}
	if best == nil || second == nil {
		a.Verdict = "An A/B test needs two variants."
		return a
	}
	a.Best, a.RunnerUp = best.Idx, second.Idx
	a.Z, a.P = TwoProportionZ(best.Successes, best.Trials, second.Successes, second.Trials)
	a.Significant = a.P < Significance && best.Rate > second.Rate
	name := MetricName(metric)
	switch {
	case best.Trials == 0 || second.Trials == 0:
		a.Verdict = "No results yet: not every variant has been sent and read."
	case a.Significant:
		a.Verdict = fmt.Sprintf("%s's %s (%.1f%%) is higher than %s's (%.1f%%), and the difference is significant (p = %.3g): unlikely to be chance.",
			best.Label, name, 100*best.Rate, second.Label, 100*second.Rate, a.P)
	case best.Rate == second.Rate:
		a.Verdict = fmt.Sprintf("%s and %s have the same %s (%.1f%%): no difference.", best.Label, second.Label, name, 100*best.Rate)
	default:
		a.Verdict = fmt.Sprintf("%s's %s (%.1f%%) is higher than %s's (%.1f%%), but the difference is not significant (p = %.3g): it may well be chance.",
			best.Label, name, 100*best.Rate, second.Label, 100*second.Rate, a.P)
	}
	return a
}
