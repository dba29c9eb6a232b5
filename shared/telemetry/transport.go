package telemetry

import (
	"net/http"
	"strconv"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
)

// HeaderRatelimitRemaining is Helix's count of points left in the client's bucket.
const HeaderRatelimitRemaining = "Ratelimit-Remaining"

// Transport instruments an HTTP client that calls Twitch: a client span per request
// (otelhttp, as a child of the caller's span: egress → Helix), otelhttp's request
// metrics, and from each response the Ratelimit-Remaining headroom and a count by
// status class. base nil is http.DefaultTransport. No trace header is sent: Twitch is
// not part of our traces, and it need not learn our ids.
func (t *Telemetry) Transport(base http.RoundTripper, ins *Instruments) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &headroom{
		next: otelhttp.NewTransport(base,
			otelhttp.WithTracerProvider(t.Tracers), otelhttp.WithMeterProvider(t.Meters),
			otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator())),
		ins: ins,
	}
}

type headroom struct {
	next http.RoundTripper
	ins  *Instruments
}

func (h *headroom) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.next.RoundTrip(req)
	if h.ins == nil {
		return resp, err
	}
	host := attribute.String("host", req.URL.Host)
	if err != nil {
		h.ins.helixReqs.Add(req.Context(), 1, metric.WithAttributes(host, attribute.String("class", "error")))
		return resp, err
	}
	h.ins.helixReqs.Add(req.Context(), 1, metric.WithAttributes(host, attribute.String("class", statusClass(resp.StatusCode))))
	if v := resp.Header.Get(HeaderRatelimitRemaining); v != "" {
		if n, perr := strconv.ParseInt(v, 10, 64); perr == nil {
			h.ins.helix.Record(req.Context(), n, metric.WithAttributes(host))
		}
	}
	return resp, err
}

func statusClass(code int) string {
	switch {
	case code == http.StatusTooManyRequests:
		return "429"
	case code >= 500:
		return "5xx"
	case code >= 400:
		return "4xx"
	case code >= 300:
		return "3xx"
	default:
		return "2xx"
	}
}
