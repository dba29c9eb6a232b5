package conduit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/bitbrat/twitch-edge/shared/twitch"
)

// WebhookShards are the conduit's webhook shards: ids IDs, served by the
// EventSubWebhook function at Callback, signed with Secret
// (TWITCH_EVENTSUB_WEBHOOK_SECRET). In the shard layout, ids 0..CONDUIT_SHARDS-1 are
// WebSocket shards and the next CONDUIT_WEBHOOK_SHARDS ids are webhook shards
// (WebhookShardIDs).
type WebhookShards struct {
	IDs              []string
	Callback, Secret string
}

// String leaves the secret out, so logging the configuration leaks nothing.
func (w WebhookShards) String() string {
	return fmt.Sprintf("webhook shards %v at %s", w.IDs, w.Callback)
}

// GoString keeps %#v as safe as %v.
func (w WebhookShards) GoString() string { return w.String() }

// WebhookShardIDs are the ids of the webhook shards in the shard layout: the n ids
// that follow the websocket WebSocket shards (CONDUIT_SHARDS, CONDUIT_WEBHOOK_SHARDS).
func WebhookShardIDs(websocket, n int) []string {
	ids := make([]string, 0, max(n, 0))
	for i := range max(n, 0) {
		ids = append(ids, strconv.Itoa(websocket+i))
	}
	return ids
}

// shardVerificationPending is the status of a webhook shard whose callback Twitch is
// verifying; it turns enabled (or verification failed) by itself.
const shardVerificationPending = "webhook_callback_verification_pending"

// KeepWebhookShards is one round of keeping the webhook shards associated: it reads
// the conduit's shards and PATCHes, in one Update Conduit Shards call, each listed id
// that is not a webhook shard with this callback or is not enabled (Twitch disables
// a webhook shard whose callback failed too often, or failed verification). It
// returns the ids it re-associated; each then goes through Twitch's callback
// verification again.
//
// A shard whose verification is still pending is left alone: PATCHing it again
// would restart the verification, and a round interval shorter than Twitch's
// verification would then never let it finish. Twitch never reports a shard's
// secret, so a changed secret is not detected here; the shard is re-associated
// (with the new secret) once Twitch disables it for the failures that follow.
//
// Listed ids the conduit does not have (it was not grown to the layout) are skipped
// and reported in the error; the others are still PATCHed. A partial refusal by
// Twitch returns the ids it did update together with the error.
func KeepWebhookShards(ctx context.Context, api ShardAPI, conduitID string, w WebhookShards) (changed []string, err error) {
	if len(w.IDs) == 0 {
		return nil, nil
	}
	if conduitID == "" {
		return nil, errors.New("keep webhook shards: conduit id is required")
	}
	if w.Callback == "" || w.Secret == "" {
		return nil, fmt.Errorf("keep webhook shards of conduit %s: a callback URL and a secret are required (EVENTSUB_WEBHOOK_CALLBACK_URL, TWITCH_EVENTSUB_WEBHOOK_SECRET)", conduitID)
	}
	shards, err := api.GetConduitShards(ctx, conduitID, "")
	if err != nil {
		return nil, fmt.Errorf("keep webhook shards of conduit %s: %w", conduitID, err)
	}
	byID := make(map[string]twitch.Shard, len(shards))
	for _, s := range shards {
		byID[s.ID] = s
	}
	var patch []twitch.ShardAssignment
	var missing []string
	seen := map[string]bool{}
	for _, id := range w.IDs {
		if seen[id] {
			continue
		}
		seen[id] = true
		s, ok := byID[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		if webhookShardKept(s, w.Callback) {
			continue
		}
		patch = append(patch, twitch.ShardAssignment{ID: id, Transport: twitch.WebhookShard(w.Callback, w.Secret)})
	}
	var errs []error
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("keep webhook shards of conduit %s: shards %v do not exist (the conduit has %d shards; grow it to CONDUIT_SHARDS+CONDUIT_WEBHOOK_SHARDS)",
			conduitID, missing, len(shards)))
	}
	if len(patch) > 0 {
		updated, perr := api.UpdateConduitShards(ctx, conduitID, patch)
		for _, s := range updated {
			changed = append(changed, s.ID)
		}
		if perr != nil {
			errs = append(errs, fmt.Errorf("keep webhook shards of conduit %s: %w", conduitID, perr))
		}
	}
	// Twitch's answer need not keep the request's order; the caller logs and tests
	// compare these, so keep them in the listed order.
	slices.SortStableFunc(changed, func(a, b string) int { return slices.Index(w.IDs, a) - slices.Index(w.IDs, b) })
	return changed, errors.Join(errs...)
}

// webhookShardKept: the shard already points at callback and is enabled, or Twitch
// is verifying that callback.
func webhookShardKept(s twitch.Shard, callback string) bool {
	if s.Transport.Method != "webhook" || s.Transport.Callback != callback {
		return false
	}
	return s.Status == twitch.StatusEnabled || s.Status == shardVerificationPending
}
