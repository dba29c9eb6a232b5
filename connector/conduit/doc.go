// Package conduit is the connector's conduit mode (EVENTSUB_TRANSPORT=conduit): one
// EventSub conduit shared by every connector instance, so that a restart or deploy
// of one instance loses nothing. Its pieces, each usable and tested on its own:
//
//   - EnsureConduit: the conduit id is kept in Firestore (conduits/{name}); it is
//     found or created at start, created anew if Twitch deleted it (its
//     subscriptions went with it; the Reconciler creates them again), and grown to
//     the configured shard count with Update Conduits. It never shrinks the conduit:
//     shards above the configured count may be held and serving.
//   - ShardLeases: every instance claims shards through fenced Firestore leases
//     (conduits/{name}/leases/shard-N). A lease lives TTL; it is renewed every TTL/3,
//     each call bounded by TTL/3; a holder that has not confirmed its lease for ⅔ TTL
//     drops it before anyone else may take it at TTL: it no longer PATCHes the
//     shard, and reads its socket only until Twitch shows the shard on another
//     session (connector/conduitmode.go), so a Firestore stall does not close shards.
//     A dead instance's shard is therefore taken over within TTL. Each change of
//     owner raises the lease's generation; a renewal names its generation, so a late
//     former owner is refused (and the holder re-checks its lease right before every
//     PATCH of the shard).
//   - RunShard: for a held shard, keeps a WebSocket to the EventSub server, PATCHes
//     the shard with the session id within 10 s of every welcome whose id changed,
//     follows session_reconnect (the session, so the shard, stays the same), reads
//     the shard's status back now and then and re-PATCHes a disabled shard, and hands
//     notification frames, unchanged, to a Sink (the WebSocket mode's sink).
//   - Reconciler: one instance at a time (a lease) makes the conduit's subscriptions
//     equal to channels × types, the channels coming from configuration and from the
//     Firestore channels collection read every round; it creates what is missing with
//     the conduit transport and the app token, deletes what is no longer wanted,
//     keeps within the cost budget (and reports what does not fit), and records
//     revocations so that it does not recreate them in a loop.
//
// # Layout rule: one WebSocket shard per instance
//
// Twitch sends a conduit notification to its target shard and, if that shard is
// disabled, retries it once on one other shard; when both are down the notification
// is lost. An instance therefore holds at most one shard at a time (MaxHeld = 1), so
// the death of one instance disables at most one shard, and every notification whose
// target was on it is retried on a shard another instance keeps enabled. Set
// CONDUIT_SHARDS to at most the number of instances that always run (the minimum
// instance count): with more shards than instances, unheld shards are disabled all
// the time, and a notification targeting one whose retry lands on the dead
// instance's shard is lost. Instances beyond the shard count hold nothing and stand
// by; they take over a dead instance's shard within the lease TTL.
//
// The trade-off: throughput per shard is one socket's, and the conduit's throughput
// grows only with the instance count; a spare instance is idle. A deployment that
// needs more shards than instances would pair the WebSocket shards with a webhook
// shard as a second chance (CONDUIT_WEBHOOK_SHARDS; KeepWebhookShards).
//
// The connector wires these together in connector/conduitmode.go: one held shard
// per instance, the reconciler under its lease, a SIGTERM that hands the shard to a
// standby before its socket closes, and status events for every change.
package conduit
