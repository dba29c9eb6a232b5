# EventSubWebhook: the one function Twitch reaches from outside (EventSub's webhook
# transport; a conduit's webhook shard points at its URL). It is therefore the only
# one with public ingress and an allUsers invoker: Twitch cannot present a Google
# identity. What protects it is Twitch's HMAC signature, checked over the raw body
# before anything else (functions/webhook). It publishes notifications to the raw
# topic and revocations' status events to internal.ingress.v1, nothing else.
#
# The secret Twitch signs with is added out of band, as the client secret is
# (10 to 100 ASCII characters; give the same value to the webhook shard):
#
#   printf %s "$WEBHOOK_SECRET" | gcloud secrets versions add \
#     twitch-edge-eventsub-webhook-secret --data-file=- --project=PROJECT

locals {
  webhook_name = "${var.name_prefix}-eventsub-webhook"
  # TWITCH_TOKEN_DATABASE only names the private database: the function has no access
  # to it, and records a conduit revocation for the reconciler only when the
  # conduit's records are in its own database (none apart).
  webhook_env = { for n, v in merge(local.common_env, {
    EVENTSUB_RAW_TOPIC    = var.eventsub_raw_topic
    TWITCH_TOKEN_DATABASE = local.private_database
  }) : n => v if v != "" }
}

resource "google_secret_manager_secret" "webhook_secret" {
  secret_id = "${var.name_prefix}-eventsub-webhook-secret"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "webhook" {
  account_id   = local.webhook_name
  display_name = "Twitch Edge EventSubWebhook function"

  depends_on = [google_project_service.enabled]
}

# Message-id claims (eventsub_webhook_messages) and revocation records, in the shared
# database only: the public function never reaches the private one (the bot's token,
# the connector's lease).
resource "google_project_iam_member" "webhook_datastore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.webhook.member

  condition {
    title      = "only-${var.firestore_database}"
    expression = "resource.name == \"projects/${var.project_id}/databases/${var.firestore_database}\""
  }
}

resource "google_pubsub_topic_iam_member" "webhook_publishes_raw" {
  topic  = google_pubsub_topic.topic["raw"].id
  role   = "roles/pubsub.publisher"
  member = google_service_account.webhook.member
}

# A revocation is a connector.status.changed event on internal.ingress.v1.
resource "google_pubsub_topic_iam_member" "webhook_publishes_status" {
  topic  = google_pubsub_topic.topic["ingress"].id
  role   = "roles/pubsub.publisher"
  member = google_service_account.webhook.member
}

resource "google_secret_manager_secret_iam_member" "webhook_secret" {
  secret_id = google_secret_manager_secret.webhook_secret.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.webhook.member
}

resource "google_cloudfunctions2_function" "webhook" {
  name     = local.webhook_name
  location = var.region
  labels   = local.labels

  build_config {
    runtime           = coalesce(var.function_runtime, module.function_source.runtime)
    entry_point       = "EventSubWebhook"
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.images.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    available_memory = "256Mi"
    available_cpu    = "1"
    # Twitch waits a few seconds; the function answers 503 after its own bounded
    # waits (3 s for Pub/Sub), long before this.
    timeout_seconds                  = 10
    min_instance_count               = 0
    max_instance_count               = var.webhook_max_instances
    max_instance_request_concurrency = 80
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.webhook.email
    environment_variables            = local.webhook_env

    secret_environment_variables {
      key        = "TWITCH_EVENTSUB_WEBHOOK_SECRET"
      project_id = var.project_id
      secret     = google_secret_manager_secret.webhook_secret.secret_id
      version    = "latest"
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_project_iam_member.build,
    google_artifact_registry_repository_iam_member.build_writes_images,
    google_secret_manager_secret_iam_member.webhook_secret,
  ]
}

# Twitch has no Google identity: anyone may invoke this one function; the signature
# check decides what is accepted.
resource "google_cloud_run_service_iam_member" "webhook_public" {
  location = google_cloudfunctions2_function.webhook.location
  service  = google_cloudfunctions2_function.webhook.service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# The claims expire a day after their last write (functions/webhook.go).
resource "google_firestore_field" "webhook_messages_expire_at" {
  database   = var.firestore_database
  collection = "eventsub_webhook_messages"
  field      = "expireAt"

  ttl_config {}
  index_config {}

  depends_on = [google_firestore_database.this, google_project_service.enabled]
}
