# ---------------------------------------------------------------------------------------
# Project and naming
# ---------------------------------------------------------------------------------------

variable "project_id" {
  description = "The Google Cloud project to deploy into."
  type        = string
}

variable "region" {
  description = "Region of the functions, the connector, the source bucket and the image repository."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions, service accounts, bucket, subscriptions). Two deployments in one project need different prefixes (and different bus_prefix values)."
  type        = string
  default     = "twitch-edge"

  validation {
    # Service account ids are at most 30 characters; the longest suffix is "-egress-whisper".
    condition     = can(regex("^[a-z][a-z0-9-]{0,13}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2-15 characters: lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "labels" {
  description = "Labels added to every resource that takes labels."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------
# Bus (Pub/Sub)
# ---------------------------------------------------------------------------------------

variable "bus_prefix" {
  description = "BUS_PREFIX: prepended to every topic name (e.g. \"prod.\" gives prod.internal.ingress.v1). Empty by default, as upstream BitBrat."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^([A-Za-z][A-Za-z0-9._~+%-]*)?$", var.bus_prefix))
    error_message = "bus_prefix must be empty or start with a letter and use only letters, digits and . _ ~ + % -."
  }
}

variable "eventsub_raw_topic" {
  description = "EVENTSUB_RAW_TOPIC: the raw EventSub topic, before bus_prefix."
  type        = string
  default     = "twitch.eventsub.raw.v1"
}

variable "whisper_topic" {
  description = "WHISPER_TOPIC: the topic EgressChat hands dm events to (it triggers EgressWhisper), before bus_prefix."
  type        = string
  default     = "twitch.egress.whisper.v1"
}

variable "egress_instance_ids" {
  description = "Instance ids that get their own egress topic internal.egress.v1.<id> (also triggering EgressChat)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.egress_instance_ids : can(regex("^[A-Za-z0-9._~+%-]+$", id))])
    error_message = "Each egress instance id may use only letters, digits and . _ ~ + % -."
  }
}

variable "message_retention" {
  description = "How long topics keep messages (for seeking and replay) and subscriptions keep unacknowledged ones, e.g. \"604800s\" (7 days)."
  type        = string
  default     = "604800s"
}

variable "retry_min_backoff" {
  description = "Retry policy of every function trigger: the first redelivery delay after a failure."
  type        = string
  default     = "10s"
}

variable "retry_max_backoff" {
  description = "Retry policy of every function trigger: the longest redelivery delay (at most 600s)."
  type        = string
  default     = "600s"
}

# ---------------------------------------------------------------------------------------
# Firestore
# ---------------------------------------------------------------------------------------

variable "firestore_database" {
  description = "FIRESTORE_DATABASE: the Firestore database id the functions and the connector use."
  type        = string
  default     = "(default)"
}

variable "create_firestore_database" {
  description = "Create the Firestore database (native mode). Set false when the project already has it (a project has at most one (default) database)."
  type        = bool
  default     = true
}

variable "firestore_location" {
  description = "Location of a Firestore database created here (a multi-region such as nam5 or eur3, or a region)."
  type        = string
  default     = "nam5"
}

variable "ttl_collections" {
  description = "Collections whose documents Firestore deletes after their expireAt time: finalize outcomes, the idempotency ledger, the delivery claims, the whisper recipient windows, the send budgets and the seen users (shared/store writes expireAt in all of them)."
  type        = list(string)
  default     = ["events", "idempotency", "deliveries", "whisperRecipients", "sendBudgets", "seenUsers"]
}

variable "private_database" {
  description = "Firestore database that holds the bot's token (oauth/twitch/bot/token) and the connector's state, readable only by the connector and the egress functions (IAM conditions per database). null: \"<name_prefix>-private\", created here. \"\": no database apart — the token stays where upstream's OAuth flow writes it by default (firestore_database), and every function's account can read it."
  type        = string
  default     = null
}

variable "private_ttl_collections" {
  description = "Collections of private_database whose documents Firestore deletes after expireAt. None today: the connector's forwarded-id ledger, the one such collection, is gone (Normalize's claim dedupes)."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------

variable "function_runtime" {
  description = "Cloud Functions Go runtime (e.g. go126). Null uses the runtime in infra/bundle/spec.json, which a test checks go.mod against."
  type        = string
  default     = null
}

variable "function_settings" {
  description = "Per-function overrides, keyed normalize, egress_chat, egress_whisper, finalize. Unset fields keep the defaults in main.tf (egress_whisper: one instance, one request at a time, to respect Twitch's whisper limits)."
  type = map(object({
    memory                = optional(string)
    cpu                   = optional(string)
    timeout_seconds       = optional(number)
    min_instances         = optional(number)
    max_instances         = optional(number)
    concurrency           = optional(number)
    max_delivery_attempts = optional(number)
  }))
  default = {}

  validation {
    condition     = alltrue([for k in keys(var.function_settings) : contains(["normalize", "egress_chat", "egress_whisper", "finalize"], k)])
    error_message = "function_settings keys must be normalize, egress_chat, egress_whisper or finalize."
  }

  validation {
    condition = alltrue([
      for s in values(var.function_settings) :
      s.max_delivery_attempts == null ? true : (s.max_delivery_attempts >= 5 && s.max_delivery_attempts <= 100)
    ])
    error_message = "max_delivery_attempts must be between 5 and 100 (Pub/Sub's limits)."
  }

  validation {
    condition = alltrue([
      for s in values(var.function_settings) :
      s.timeout_seconds == null ? true : (s.timeout_seconds >= 10 && s.timeout_seconds <= 600)
    ])
    error_message = "timeout_seconds must be between 10 and 600: it is also the push subscription's ack deadline."
  }
}

variable "log_level" {
  description = "LOG_LEVEL of the functions and the connector (debug, info, warn, error)."
  type        = string
  default     = "info"
}

variable "egress_channels" {
  description = "EGRESS_CHANNELS of EgressChat: the channels (logins or ids) the bot may post in. null: twitch_channels."
  type        = list(string)
  default     = null
}

variable "egress_publishers" {
  description = "Members allowed to publish to the egress topics (internal.egress.v1 and its per-instance topics), e.g. [\"serviceAccount:bitbrat-llm@PROJECT.iam.gserviceaccount.com\"]: upstream's services. Nobody else can make the bot speak (no project-wide publisher role is granted)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.egress_publishers : can(regex("^(serviceAccount|group|user):", m))])
    error_message = "egress_publishers are IAM members: serviceAccount:..., group:... or user:...."
  }
}

variable "egress_whisper_seen_within" {
  description = "EGRESS_WHISPER_SEEN_WITHIN of Normalize and EgressWhisper: when set (e.g. \"24h\"), whispers go only to users seen on internal.ingress.v1 within it. Empty: off."
  type        = string
  default     = ""
}

variable "egress_destination" {
  description = "EGRESS_DESTINATION of Normalize: when set, becomes egress.destination of normalized events. Empty: not set."
  type        = string
  default     = ""
}

variable "normalize_max_age" {
  description = "NORMALIZE_MAX_AGE of Normalize: notifications older than this are dead-lettered (Go duration)."
  type        = string
  default     = "24h"
}

variable "event_ttl" {
  description = "EVENT_TTL of Finalize: expireAt of an outcome = deliveredAt + this (Go duration)."
  type        = string
  default     = "168h"
}

# ---------------------------------------------------------------------------------------
# Twitch
# ---------------------------------------------------------------------------------------

variable "twitch_client_id" {
  description = "TWITCH_CLIENT_ID of the Twitch application (not secret). Its client secret goes into Secret Manager out of band: see README."
  type        = string

  validation {
    condition     = length(trimspace(var.twitch_client_id)) > 0
    error_message = "twitch_client_id is required."
  }
}

variable "twitch_bot_user_id" {
  description = "TWITCH_BOT_USER_ID: the bot's Twitch user id (digits). Empty: the user of the bot token in Firestore."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[0-9]*$", var.twitch_bot_user_id))
    error_message = "twitch_bot_user_id must be digits (a Twitch user id) or empty."
  }
}

variable "twitch_channels" {
  description = "TWITCH_CHANNELS of the connector: channel logins (or numeric user ids) whose events it subscribes to."
  type        = list(string)
  default     = []
}

variable "twitch_api_base_url" {
  description = "TWITCH_API_BASE_URL. Empty: Twitch's Helix (https://api.twitch.tv/helix)."
  type        = string
  default     = ""
}

variable "twitch_auth_base_url" {
  description = "TWITCH_AUTH_BASE_URL. Empty: Twitch's OAuth (https://id.twitch.tv/oauth2)."
  type        = string
  default     = ""
}

variable "twitch_eventsub_ws_url" {
  description = "TWITCH_EVENTSUB_WS_URL of the connector. Empty: wss://eventsub.wss.twitch.tv/ws."
  type        = string
  default     = ""
}

variable "twitch_eventsub_subscriptions_url" {
  description = "TWITCH_EVENTSUB_SUBSCRIPTIONS_URL of the connector. Empty: <TWITCH_API_BASE_URL>/eventsub/subscriptions."
  type        = string
  default     = ""
}

variable "eventsub_extra_subscriptions" {
  description = "EVENTSUB_EXTRA_SUBSCRIPTIONS of the connector: further subscription types and versions, e.g. \"channel.subscribe:1\". Empty: none."
  type        = string
  default     = ""
}

# ---------------------------------------------------------------------------------------
# Connector (Cloud Run)
# ---------------------------------------------------------------------------------------

variable "connector_image" {
  description = "Container image of the connector, e.g. us-central1-docker.pkg.dev/PROJECT/twitch-edge/connector:TAG (see README: build and push it first). Required unless eventsub_transport is serverless (no connector)."
  type        = string
  default     = ""
}

variable "connector_instance_id" {
  description = "CONNECTOR_INSTANCE_ID, the prefix of each instance's lease name (a random suffix is added). Empty: the hostname."
  type        = string
  default     = ""
}

variable "connector_cpu" {
  description = "CPU of the connector's one instance (always allocated)."
  type        = string
  default     = "1"
}

variable "connector_memory" {
  description = "Memory of the connector's one instance."
  type        = string
  default     = "512Mi"
}

variable "connector_gomemlimit" {
  description = "GOMEMLIMIT of the connector (Go's soft heap limit), about three quarters of connector_memory. Empty: no limit."
  type        = string
  default     = "384MiB"
}

variable "connector_readiness_probe" {
  description = "Probe /readyz as a Cloud Run readiness probe (a Preview feature: the service is then deployed with launch stage BETA). /healthz is always the startup and liveness probe."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Protect the connector service from terraform destroy."
  type        = bool
  default     = false
}

variable "webhook_max_instances" {
  description = "Upper bound on EventSubWebhook instances (webhook.tf): the public function cannot scale without limit under a flood of requests, signed or not."
  type        = number
  default     = 5

  validation {
    condition     = var.webhook_max_instances >= 1 && var.webhook_max_instances <= 100
    error_message = "webhook_max_instances must be between 1 and 100."
  }
}

# --- Observability (monitoring.tf) -------------------------------------------------------

variable "telemetry_enabled" {
  description = "Export metrics and traces to Google Cloud (sets OTEL_EXPORTER_OTLP_ENDPOINT)."
  type        = bool
  default     = true
}

variable "trace_sample_ratio" {
  description = "Share of new traces sampled (OTEL_TRACES_SAMPLER_ARG, 0..1). Cloud Trace bills per span ingested."
  type        = number
  default     = 0.1
  validation {
    condition     = var.trace_sample_ratio >= 0 && var.trace_sample_ratio <= 1
    error_message = "trace_sample_ratio is a ratio between 0 and 1."
  }
}

variable "metric_export_interval_ms" {
  description = "How often metrics are pushed (OTEL_METRIC_EXPORT_INTERVAL, ms). Cloud Monitoring accepts one point per series every 5 s at most."
  type        = number
  default     = 60000
  validation {
    condition     = var.metric_export_interval_ms >= 10000
    error_message = "metric_export_interval_ms must be at least 10000 (10 s)."
  }
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/P/notificationChannels/N) every alert notifies. Empty: the alerts open incidents without notifying."
  type        = list(string)
  default     = []
}

variable "egress_failed_ratio_threshold" {
  description = "Alert when more than this share of egress deliveries over 15 min are FAILED."
  type        = number
  default     = 0.2
}

variable "whisper_recipients_warning" {
  description = "Alert when the bot may add fewer than this many new whisper recipients today (Twitch allows 40)."
  type        = number
  default     = 5
}

# ---------------------------------------------------------------------------------------
# EventSub transport: WebSocket, conduit, serverless (README: "Conduit mode")
# ---------------------------------------------------------------------------------------

variable "eventsub_transport" {
  description = <<-EOT
    How EventSub reaches the edge. "websocket" (default): one connector instance holds one
    EventSub WebSocket (one bot, a few channels). "conduit": EVENTSUB_TRANSPORT=conduit, the
    connector runs conduit_min_instances+ instances sharing one conduit of conduit_shards
    WebSocket shards (plus conduit_webhook_shards webhook shards on EventSubWebhook); a
    restart or deploy loses nothing. "serverless": no connector at all; a conduit of
    conduit_webhook_shards webhook shards, kept by EventSubReconcile on a Cloud Scheduler
    tick (reconcile.tf).
  EOT
  type        = string
  default     = "websocket"

  validation {
    condition     = contains(["websocket", "conduit", "serverless"], var.eventsub_transport)
    error_message = "eventsub_transport must be websocket, conduit or serverless."
  }
}

variable "conduit_shards" {
  description = "CONDUIT_SHARDS (conduit mode): the conduit's WebSocket shards, one per connector instance; at most conduit_min_instances (the layout rule: one instance's death disables at most one shard)."
  type        = number
  default     = 2

  validation {
    condition     = var.conduit_shards >= 1 && var.conduit_shards <= 20000 && floor(var.conduit_shards) == var.conduit_shards
    error_message = "conduit_shards must be a whole number between 1 and 20000."
  }
}

variable "conduit_webhook_shards" {
  description = "CONDUIT_WEBHOOK_SHARDS: webhook shards pointed at EventSubWebhook's URL. Conduit mode: after the WebSocket shards, the second chance while connector instances are away (0: none). Serverless mode: the conduit's only shards (at least 1)."
  type        = number
  default     = 0

  validation {
    condition     = var.conduit_webhook_shards >= 0 && var.conduit_webhook_shards <= 20000 && floor(var.conduit_webhook_shards) == var.conduit_webhook_shards
    error_message = "conduit_webhook_shards must be a whole number between 0 and 20000."
  }
}

variable "conduit_min_instances" {
  description = "Conduit mode: the connector's minimum instance count (at least 2, so that a restart or deploy always leaves an instance serving; at least conduit_shards)."
  type        = number
  default     = 2

  validation {
    condition     = var.conduit_min_instances >= 2
    error_message = "conduit mode runs at least 2 connector instances."
  }
}

variable "conduit_max_instances" {
  description = "Conduit mode: the connector's maximum instance count (instances beyond conduit_shards stand by and take over a dead instance's shard)."
  type        = number
  default     = 4
}

variable "reconcile_schedule" {
  description = "Serverless mode: Cloud Scheduler's cron schedule of EventSubReconcile's ticks (each runs one bounded round; a channel added to the channels collection takes effect within it)."
  type        = string
  default     = "* * * * *"
}

variable "reconcile_time_zone" {
  description = "Serverless mode: the time zone of reconcile_schedule."
  type        = string
  default     = "Etc/UTC"
}
