# BitBrat Twitch Edge on Google Cloud: the EventSub connector (Cloud Run), four
# Pub/Sub-driven Cloud Functions (gen2), their topics and subscriptions, Firestore and
# the Twitch client secret. One concern per file: apis, pubsub, firestore, secrets,
# source (the function zip), functions, connector, iam.

provider "google" {
  project = var.project_id
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  labels = merge({ app = "twitch-edge", deployment = var.name_prefix }, var.labels)

  # Topic names, BUS_PREFIX applied (the functions apply it the same way:
  # shared/event.Prefix.Topic).
  topics = merge(
    {
      raw        = "${var.bus_prefix}${var.eventsub_raw_topic}"
      ingress    = "${var.bus_prefix}internal.ingress.v1"
      egress     = "${var.bus_prefix}internal.egress.v1"
      whisper    = "${var.bus_prefix}${var.whisper_topic}"
      finalize   = "${var.bus_prefix}internal.persistence.finalize.v1"
      deadletter = "${var.bus_prefix}internal.deadletter.v1"
    },
    { for id in var.egress_instance_ids : "egress.${id}" => "${var.bus_prefix}internal.egress.v1.${id}" },
  )

  # The database apart for the token and the connector's state ("" = none: the shared
  # database, upstream's default location).
  private_database = var.private_database == null ? "${var.name_prefix}-private" : var.private_database
  token_database   = local.private_database == "" ? var.firestore_database : local.private_database
  egress_channels  = var.egress_channels == null ? var.twitch_channels : var.egress_channels

  # EventSub transport (variables.tf, eventsub_transport): the connector runs in
  # WebSocket and conduit mode; serverless mode has EventSubReconcile instead.
  conduit_mode           = var.eventsub_transport == "conduit"
  serverless             = var.eventsub_transport == "serverless"
  connector_enabled      = !local.serverless
  connector_uses_webhook = local.conduit_mode && var.conduit_webhook_shards > 0

  # Environment every process reads; empty values are left out so that the code's
  # defaults apply (see the README's configuration table).
  common_env = merge({
    GOOGLE_CLOUD_PROJECT = var.project_id
    FIRESTORE_DATABASE   = var.firestore_database
    BUS_PREFIX           = var.bus_prefix
    LOG_LEVEL            = var.log_level
  }, local.telemetry_env) # monitoring.tf
  # Processes that call Twitch also get TWITCH_CLIENT_SECRET from Secret Manager.
  twitch_env = {
    TWITCH_CLIENT_ID     = var.twitch_client_id
    TWITCH_BOT_USER_ID   = var.twitch_bot_user_id
    TWITCH_API_BASE_URL  = var.twitch_api_base_url
    TWITCH_AUTH_BASE_URL = var.twitch_auth_base_url
  }

  # The four entry points of the functions package. triggers and publishes are keys of
  # local.topics; twitch = needs the Twitch client secret. Sizes fit each job:
  # EgressWhisper runs one request at a time on one instance (Twitch allows 3 whispers
  # a second, 100 a minute and 40 new recipients a day per bot); the others scale out.
  function_defs = {
    # Raw EventSub notifications to InternalEventV2 on internal.ingress.v1.
    normalize = {
      entry_point = "Normalize"
      triggers    = ["raw"]
      publishes   = ["ingress", "deadletter"]
      twitch      = false
      env = {
        EGRESS_DESTINATION         = var.egress_destination
        NORMALIZE_MAX_AGE          = var.normalize_max_age
        EGRESS_WHISPER_SEEN_WITHIN = var.egress_whisper_seen_within
      }
      defaults = { memory = "512Mi", cpu = "1", timeout_seconds = 60, min_instances = 0, max_instances = 10, concurrency = 40, max_delivery_attempts = 10 }
    }
    # Egress events to Twitch chat; dm events handed on to the whisper topic.
    egress_chat = {
      entry_point = "EgressChat"
      triggers    = concat(["egress"], [for id in var.egress_instance_ids : "egress.${id}"])
      publishes   = ["whisper", "finalize", "deadletter"]
      twitch      = true
      env = {
        WHISPER_TOPIC         = var.whisper_topic
        EGRESS_CHANNELS       = join(",", local.egress_channels)
        TWITCH_TOKEN_DATABASE = local.private_database
      }
      defaults = { memory = "512Mi", cpu = "1", timeout_seconds = 120, min_instances = 0, max_instances = 5, concurrency = 20, max_delivery_attempts = 10 }
    }
    # dm egress events to Twitch whispers, within Twitch's whisper limits.
    egress_whisper = {
      entry_point = "EgressWhisper"
      triggers    = ["whisper"]
      publishes   = ["finalize", "deadletter"]
      twitch      = true
      env = {
        TWITCH_TOKEN_DATABASE      = local.private_database
        EGRESS_WHISPER_SEEN_WITHIN = var.egress_whisper_seen_within
      }
      # Rate-limited whispers are retried at the limit's reset, so allow more attempts.
      defaults = { memory = "512Mi", cpu = "1", timeout_seconds = 120, min_instances = 0, max_instances = 1, concurrency = 1, max_delivery_attempts = 20 }
    }
    # Delivery outcomes into Firestore events/{correlationId}.
    finalize = {
      entry_point = "Finalize"
      triggers    = ["finalize"]
      publishes   = ["deadletter"]
      twitch      = false
      env = {
        EVENT_TTL = var.event_ttl
      }
      defaults = { memory = "512Mi", cpu = "1", timeout_seconds = 60, min_instances = 0, max_instances = 5, concurrency = 40, max_delivery_attempts = 10 }
    }
  }

  functions = {
    for k, f in local.function_defs : k => merge(f, {
      name = "${var.name_prefix}-${replace(k, "_", "-")}"
      settings = {
        for s, d in f.defaults : s => try(coalesce(lookup(var.function_settings, k, null)[s], d), d)
      }
      env = { for n, v in merge(local.common_env, f.twitch ? local.twitch_env : {}, f.env) : n => v if v != "" }
    })
  }

  # One push subscription per (function, trigger topic).
  triggers = merge([
    for k, f in local.functions : {
      for t in f.triggers : "${k}/${t}" => { function = k, topic = t }
    }
  ]...)

  # Who publishes where: each function on its output topics, the connector on raw, and
  # the named upstream services (egress_publishers) on the egress topics.
  egress_topics = concat(["egress"], [for id in var.egress_instance_ids : "egress.${id}"])
  publishers = merge(
    merge([
      for m in var.egress_publishers : {
        for t in local.egress_topics : "upstream/${m}/${t}" => { member = m, topic = t }
      }
    ]...),
    merge([
      for k, f in local.functions : {
        for t in f.publishes : "${k}/${t}" => { member = google_service_account.function[k].member, topic = t }
      }
    ]...),
    local.connector_enabled ? { "connector/raw" = { member = google_service_account.connector.member, topic = "raw" } } : {},
    # Status events (connector.status.changed) go to internal.ingress.v1.
    local.connector_enabled ? { "connector/ingress" = { member = google_service_account.connector.member, topic = "ingress" } } : {},
  )

  # Firestore access, per database (IAM conditions on the database's resource name):
  # the shared database for every function and, when the token is kept apart, the
  # private one only for the components that use the token (the egress functions) or
  # own the state there (the connector, whose FIRESTORE_DATABASE it is).
  token_users = toset(["egress_chat", "egress_whisper"])
  datastore_access = merge(
    { for k, sa in google_service_account.function : "${k}/${var.firestore_database}" => { member = sa.member, database = var.firestore_database } },
    { for k in local.token_users : "${k}/${local.private_database}" => { member = google_service_account.function[k].member, database = local.private_database } if local.private_database != "" },
    # The connector's state (and the conduit's records) live in its database, the
    # private one when there is one.
    local.connector_enabled ? { "connector/${local.token_database}" = { member = google_service_account.connector.member, database = local.token_database } } : {},
  )

  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}
