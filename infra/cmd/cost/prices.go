package main

// Prices are Google Cloud list prices in USD (no free tier, no committed-use
// discount), for Tier 1 regions (us-central1).
type Prices struct {
	// Date is when the prices were read; Sources where.
	Date    string
	Sources []string
	// Firestore Standard edition, per document operation.
	FirestoreRead, FirestoreWrite, FirestoreDelete float64
	// Pub/Sub throughput (publish and delivery), per byte; each publish, push or
	// pull request is billed at least PubSubMinRequest bytes, and each message adds
	// PubSubPerMessage bytes to its data and attributes (20 for the timestamp, 16 for
	// a message id).
	PubSubByte                         float64
	PubSubMinRequest, PubSubPerMessage int
	// Cloud Run functions / Cloud Run, request-based billing: per request, per
	// vCPU-second and per GiB-second of billable instance time.
	FnRequest, FnVCPUSecond, FnGiBSecond float64
	// Cloud Run instance-based billing (the connector, CPU always allocated).
	RunVCPUSecond, RunGiBSecond float64
}

// ListPrices are the prices the README's cost table uses.
var ListPrices = Prices{
	Date: "2026-12-01",
	Sources: []string{
		"https://cloud.google.com/firestore/pricing and https://firebase.google.com/docs/firestore/standard-edition (us-central1: $0.03 per 100,000 reads, $0.09 per 100,000 writes, $0.01 per 100,000 deletes)",
		"https://cloud.google.com/pubsub/pricing ($40 per TiB of publish and delivery throughput, at least 1,000 bytes per publish, push or pull request)",
		"https://cloud.google.com/run/pricing (Tier 1; request-based: $0.40 per million requests, $0.000024 per vCPU-second, $0.0000025 per GiB-second; instance-based: $0.000018 per vCPU-second, $0.000002 per GiB-second)",
	},
	FirestoreRead:    0.03 / 100_000,
	FirestoreWrite:   0.09 / 100_000,
	FirestoreDelete:  0.01 / 100_000,
	PubSubByte:       40.0 / (1 << 40),
	PubSubMinRequest: 1000,
	PubSubPerMessage: 20 + 16,
	FnRequest:        0.40 / 1_000_000,
	FnVCPUSecond:     0.000024,
	FnGiBSecond:      0.0000025,
	RunVCPUSecond:    0.000018,
	RunGiBSecond:     0.000002,
}
