# Serverless mode (eventsub_transport = "serverless"): no connector runs. The conduit
# has webhook shards only, served by EventSubWebhook (webhook.tf), and EventSubReconcile
# keeps it: Cloud Scheduler publishes a tick to a topic every minute, a push
# subscription delivers it, and each tick runs one bounded round (conduit found or
# created, webhook shards pointed at the webhook's URL, subscriptions reconciled) with
# the connector's own conduit code (functions/reconcile).
#
# Least privilege: internal ingress and only the push identity may invoke it; it reads
# and writes the connector's database (the conduit, its leases and revocations, the
# channels collection, the app token), uses the client secret (the app token) and the
# webhook secret (given to the webhook shards), and publishes status events to
# internal.ingress.v1 only.

locals {
  reconcile_name = "${var.name_prefix}-eventsub-reconcile"
  reconcile_env = { for n, v in merge(local.common_env, local.twitch_env, {
    FIRESTORE_DATABASE                = local.token_database
    TWITCH_CHANNELS                   = join(",", var.twitch_channels)
    TWITCH_EVENTSUB_SUBSCRIPTIONS_URL = var.twitch_eventsub_subscriptions_url
    EVENTSUB_EXTRA_SUBSCRIPTIONS      = var.eventsub_extra_subscriptions
    CONDUIT_WEBHOOK_SHARDS            = tostring(var.conduit_webhook_shards)
    EVENTSUB_WEBHOOK_CALLBACK_URL     = google_cloudfunctions2_function.webhook.service_config[0].uri
  }) : n => v if v != "" }
  scheduler_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-cloudscheduler.iam.gserviceaccount.com"
}

resource "google_service_account" "reconcile" {
  count = local.serverless ? 1 : 0

  account_id   = local.reconcile_name
  display_name = "Twitch Edge EventSubReconcile function (serverless mode)"

  depends_on = [google_project_service.enabled]
}

resource "google_project_iam_member" "reconcile_datastore_user" {
  count = local.serverless ? 1 : 0

  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.reconcile[0].member

  condition {
    title      = "only-${local.token_database}"
    expression = "resource.name == \"projects/${var.project_id}/databases/${local.token_database}\""
  }
}

resource "google_pubsub_topic_iam_member" "reconcile_publishes_status" {
  count = local.serverless ? 1 : 0

  topic  = google_pubsub_topic.topic["ingress"].id
  role   = "roles/pubsub.publisher"
  member = google_service_account.reconcile[0].member
}

resource "google_secret_manager_secret_iam_member" "reconcile_webhook_secret" {
  count = local.serverless ? 1 : 0

  secret_id = google_secret_manager_secret.webhook_secret.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.reconcile[0].member
}

resource "google_cloudfunctions2_function" "reconcile" {
  count = local.serverless ? 1 : 0

  name     = local.reconcile_name
  location = var.region
  labels   = local.labels

  build_config {
    runtime           = coalesce(var.function_runtime, module.function_source.runtime)
    entry_point       = "EventSubReconcile"
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
    # A round is bounded by 50 s (functions/reconcile); one tick at a time.
    timeout_seconds                  = 60
    min_instance_count               = 0
    max_instance_count               = 1
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.reconcile[0].email
    environment_variables            = local.reconcile_env

    secret_environment_variables {
      key        = "TWITCH_CLIENT_SECRET"
      project_id = var.project_id
      secret     = google_secret_manager_secret.twitch_client_secret.secret_id
      version    = "latest"
    }
    secret_environment_variables {
      key        = "TWITCH_EVENTSUB_WEBHOOK_SECRET"
      project_id = var.project_id
      secret     = google_secret_manager_secret.webhook_secret.secret_id
      version    = "latest"
    }
  }

  lifecycle {
    precondition {
      condition     = var.conduit_webhook_shards >= 1
      error_message = "serverless mode needs at least one webhook shard (conduit_webhook_shards)."
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_project_iam_member.build,
    google_artifact_registry_repository_iam_member.build_writes_images,
    google_secret_manager_secret_iam_member.twitch_client_secret,
    google_secret_manager_secret_iam_member.reconcile_webhook_secret,
  ]
}

resource "google_cloud_run_service_iam_member" "push_invokes_reconcile" {
  count = local.serverless ? 1 : 0

  location = google_cloudfunctions2_function.reconcile[0].location
  service  = google_cloudfunctions2_function.reconcile[0].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

# The ticks. Short retention: a tick that could not be delivered for 10 minutes is
# worth nothing (the function also skips ticks older than 5 minutes).
resource "google_pubsub_topic" "reconcile_tick" {
  count = local.serverless ? 1 : 0

  name                       = "${var.bus_prefix}twitch.eventsub.reconcile.tick"
  message_retention_duration = "600s"
  labels                     = local.labels

  depends_on = [google_project_service.enabled]
}

# Cloud Scheduler publishes as its service agent: on this topic only.
resource "google_pubsub_topic_iam_member" "scheduler_publishes_ticks" {
  count = local.serverless ? 1 : 0

  topic  = google_pubsub_topic.reconcile_tick[0].id
  role   = "roles/pubsub.publisher"
  member = local.scheduler_service_agent
}

# No dead-letter policy: ticks are not data. A failed round is logged and the next
# tick is the retry; Pub/Sub's own redelivery is bounded by the short retention.
resource "google_pubsub_subscription" "reconcile_tick" {
  count = local.serverless ? 1 : 0

  name  = "${google_pubsub_topic.reconcile_tick[0].name}.${local.reconcile_name}"
  topic = google_pubsub_topic.reconcile_tick[0].id

  ack_deadline_seconds       = 60
  message_retention_duration = "600s"
  labels                     = local.labels

  push_config {
    push_endpoint = "${google_cloudfunctions2_function.reconcile[0].service_config[0].uri}/projects/${var.project_id}/topics/${google_pubsub_topic.reconcile_tick[0].name}"

    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = google_cloudfunctions2_function.reconcile[0].service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "60s"
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_cloud_run_service_iam_member.push_invokes_reconcile,
    google_service_account_iam_member.pubsub_agent_mints_push_tokens,
  ]
}

resource "google_cloud_scheduler_job" "reconcile" {
  count = local.serverless ? 1 : 0

  name      = local.reconcile_name
  region    = var.region
  schedule  = var.reconcile_schedule
  time_zone = var.reconcile_time_zone

  pubsub_target {
    topic_name = google_pubsub_topic.reconcile_tick[0].id
    data       = base64encode("tick")
  }

  depends_on = [
    google_project_service.enabled,
    google_pubsub_topic_iam_member.scheduler_publishes_ticks,
  ]
}
