# Observability: the connector and the functions push OpenTelemetry metrics and traces
# over OTLP/gRPC to Google's Telemetry API (telemetry.googleapis.com; see the README's
# Operations section for why not Managed Service for Prometheus). Metrics land in
# Cloud Monitoring as Prometheus metrics (queried with PromQL below: `job` is the
# service.name, `instance` the service.instance.id), traces in Cloud Trace, and log
# lines carry logging.googleapis.com/trace so Cloud Logging links them.
#
# This file holds the APIs, the two writer roles, the telemetry environment the
# processes read (merged into local.common_env), the dashboard and the alert policies;
# its variables are at the end of variables.tf.

locals {
  # Read by every process (shared/telemetry.ReadConfig); merged into common_env.
  telemetry_env = var.telemetry_enabled ? {
    OTEL_EXPORTER_OTLP_ENDPOINT = "https://telemetry.googleapis.com"
    OTEL_TRACES_SAMPLER_ARG     = tostring(var.trace_sample_ratio)
    OTEL_METRIC_EXPORT_INTERVAL = tostring(var.metric_export_interval_ms)
  } : {}

  # Who writes metrics and traces: the connector and each function.
  telemetry_writers = merge(
    { connector = google_service_account.connector.member },
    { for k, sa in google_service_account.function : k => sa.member },
  )
  telemetry_roles = ["roles/monitoring.metricWriter", "roles/cloudtrace.agent"]
  telemetry_grants = var.telemetry_enabled ? {
    for pair in setproduct(keys(local.telemetry_writers), local.telemetry_roles) :
    "${pair[0]}/${pair[1]}" => { member = local.telemetry_writers[pair[0]], role = pair[1] }
  } : {}

  # PromQL selectors of the two services.
  connector_job = "job=\"connector\""
  functions_job = "job=\"functions\""
}

resource "google_project_service" "observability" {
  for_each = toset([
    "monitoring.googleapis.com", # dashboards, alert policies, the metrics' store
    "cloudtrace.googleapis.com", # traces
    "telemetry.googleapis.com",  # the OTLP endpoint
  ])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# Only the writer roles: no read access to metrics or traces.
resource "google_project_iam_member" "telemetry_writer" {
  for_each = local.telemetry_grants

  project = var.project_id
  role    = each.value.role
  member  = each.value.member
}

# --- Dashboard --------------------------------------------------------------------------

locals {
  # Each tile: a title and PromQL queries, one line per series.
  dashboard_tiles = [
    { title = "Ingress: notifications/s by type and channel", queries = ["sum by (type, channel) (rate(eventsub_ingress_total{${local.connector_job}}[5m]))"] },
    { title = "Frame → publish latency (p50, p99, s)", queries = [
      "histogram_quantile(0.5, sum by (le) (rate(relay_frame_to_publish_seconds_bucket{${local.connector_job}}[5m])))",
      "histogram_quantile(0.99, sum by (le) (rate(relay_frame_to_publish_seconds_bucket{${local.connector_job}}[5m])))",
    ] },
    { title = "Relay buffer fill (share of CONNECTOR_BUFFER_BYTES)", queries = ["max(relay_buffer_fill_ratio{${local.connector_job}})"] },
    { title = "Spill: frames pending and waiting for replay", queries = [
      "sum(relay_spill_pending{${local.connector_job}})",
      "sum(relay_spill_backlog{${local.connector_job}})",
    ] },
    { title = "Connector ready (holder)", queries = ["max(connector_ready{${local.connector_job}})"] },
    { title = "EventSub reconnects by reason (per 5 min)", queries = ["sum by (reason) (increase(eventsub_reconnects_total{${local.connector_job}}[5m]))"] },
    { title = "Subscriptions by status", queries = ["sum by (status) (eventsub_subscriptions{${local.connector_job}})"] },
    { title = "Conduit shards by status", queries = ["sum by (status) (conduit_shards{${local.connector_job}})"] },
    { title = "Function outcomes by function, outcome and code (/s)", queries = ["sum by (function, outcome, code) (rate(function_messages_total{${local.functions_job}}[5m]))"] },
    { title = "Egress outcomes by kind, status and code (/s)", queries = ["sum by (kind, status, code) (rate(egress_outcomes_total{${local.functions_job}}[5m]))"] },
    { title = "Chat budget left (tightest window, by channel)", queries = ["min by (channel) (egress_send_budget_remaining{budget=\"chat\"})"] },
    { title = "Whisper caps left (per-minute budget, daily recipients)", queries = [
      "min(egress_send_budget_remaining{budget=\"whisper\"})",
      "min(egress_whisper_recipients_remaining)",
    ] },
    { title = "Helix rate-limit headroom (Ratelimit-Remaining)", queries = ["min by (job) (helix_ratelimit_remaining)"] },
    { title = "Twitch responses by status class (/s)", queries = ["sum by (job, class) (rate(helix_requests_total[5m]))"] },
    { title = "Token refreshes by outcome (per 15 min)", queries = ["sum by (outcome) (increase(twitch_token_refresh_total[15m]))"] },
    { title = "Dead-letter topic: messages published (/s)", queries = ["sum(rate(pubsub_googleapis_com:topic_send_message_operation_count{monitored_resource=\"pubsub_topic\",topic_id=\"${local.topics["deadletter"]}\"}[5m]))"] },
  ]
}

resource "google_monitoring_dashboard" "edge" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "Twitch Edge (${var.name_prefix})"
    mosaicLayout = {
      columns = 12
      tiles = [for i, t in local.dashboard_tiles : {
        xPos   = (i % 2) * 6
        yPos   = floor(i / 2) * 4
        width  = 6
        height = 4
        widget = {
          title = t.title
          xyChart = {
            dataSets = [for q in t.queries : {
              plotType        = "LINE"
              timeSeriesQuery = { prometheusQuery = q }
            }]
          }
        }
      }]
    }
  })

  depends_on = [google_project_service.observability]
}

# --- Alert policies -----------------------------------------------------------------------

locals {
  alerts = {
    connector_not_ready = {
      name     = "Connector not ready for 2 min"
      query    = "(max(connector_ready{${local.connector_job}}) < 1) or (absent(connector_ready{${local.connector_job}}) == 1)"
      duration = "120s"
      doc      = "No connector instance holds a ready EventSub session: notifications are not being forwarded. Check the connector's /readyz reason in its logs (standby, not connected, subscriptions not enabled, backlog near its limit) and the README's Operations section."
    }
    subscription_failed = {
      name     = "EventSub subscription failed or revoked"
      query    = "sum(eventsub_subscriptions{${local.connector_job},status!=\"enabled\"}) > 0"
      duration = "60s"
      doc      = "A subscription could not be created or Twitch revoked it (authorization_revoked, user_removed, version_removed). Usually the bot's token lost a scope or a broadcaster revoked the app: re-authorize (twitchctl login) and see the connector's eventsub log lines."
    }
    shard_disabled = {
      name     = "Conduit shard not enabled"
      query    = "max(conduit_shards{${local.connector_job},status!=\"enabled\"}) > 0"
      duration = "300s"
      doc      = "A conduit shard is disabled or disconnected: events for it are not delivered. The connector re-associates WebSocket shards; a webhook shard failing verification needs the webhook function reachable."
    }
    dead_letters = {
      name     = "Messages on the dead-letter topic"
      query    = "sum(increase(pubsub_googleapis_com:topic_send_message_operation_count{monitored_resource=\"pubsub_topic\",topic_id=\"${local.topics["deadletter"]}\"}[10m])) > 0"
      duration = "0s"
      doc      = "Something could not be processed and was dead-lettered (input that can never be processed, or Pub/Sub's maximum delivery attempts). Pull the dead-letter subscription (terraform output deadletter_subscription) and read the reason; replay with seek after a fix."
    }
    egress_failed_ratio = {
      name     = "Egress FAILED ratio above ${var.egress_failed_ratio_threshold}"
      query    = "(sum(increase(egress_outcomes_total{${local.functions_job},status=\"FAILED\"}[15m])) / sum(increase(egress_outcomes_total{${local.functions_job}}[15m]))) > ${var.egress_failed_ratio_threshold}"
      duration = "300s"
      doc      = "Too many chat messages or whispers fail. The code label says why (CHANNEL_NOT_ALLOWED, WHISPER_RECIPIENT_CAP, Twitch errors): see the egress_outcomes_total panel and the finalize records."
    }
    buffer_full = {
      name     = "Relay buffer above 80 %"
      query    = "max(relay_buffer_fill_ratio{${local.connector_job}}) > 0.8"
      duration = "120s"
      doc      = "Pub/Sub or Firestore is behind: the connector's in-memory budget is filling, then frames spill to Firestore, then the socket goes unread. Check Pub/Sub and Firestore health and the relay_publish_retries_total and spill panels."
    }
    token_refresh_failing = {
      name     = "Twitch token refresh failing"
      query    = "sum(increase(twitch_token_refresh_total{outcome!=\"ok\"}[15m])) > 0"
      duration = "0s"
      doc      = "A refresh of the bot's token failed (outcome is the error code). TOKEN_NOT_REFRESHABLE or an invalid refresh token needs a new authorization (twitchctl login); a transient code clears on its own."
    }
    whisper_cap = {
      name     = "Whisper daily recipient cap nearly used"
      query    = "min(egress_whisper_recipients_remaining{${local.functions_job}}) < ${var.whisper_recipients_warning}"
      duration = "0s"
      doc      = "Fewer than ${var.whisper_recipients_warning} new whisper recipients are left today (Twitch allows 40 a day); beyond it whispers to new users fail with WHISPER_RECIPIENT_CAP."
    }
  }
}

resource "google_monitoring_alert_policy" "edge" {
  for_each = local.alerts

  project               = var.project_id
  display_name          = "Twitch Edge (${var.name_prefix}): ${each.value.name}"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = each.value.name
    condition_prometheus_query_language {
      query               = each.value.query
      duration            = each.value.duration
      evaluation_interval = "60s"
    }
  }

  documentation {
    content   = each.value.doc
    mime_type = "text/markdown"
  }

  depends_on = [google_project_service.observability]
}
