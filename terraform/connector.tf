# The connector: the always-on holder of the EventSub WebSocket, its CPU always
# allocated (cpu_idle = false: no throttling between requests, since its work is the
# socket, not requests). In WebSocket mode exactly one instance (min = max = 1): a
# deploy briefly runs the old and the new revision side by side, and the connector's
# Firestore lease lets only one hold the EventSub session. In conduit mode 2+ instances
# share one conduit, one WebSocket shard each (fenced Firestore leases), so a restart
# or deploy loses nothing; the webhook shards, if any, point at EventSubWebhook. In
# serverless mode there is no connector (reconcile.tf). On SIGTERM Cloud Run allows 10
# seconds before SIGKILL: the connector flushes pending publishes and releases its
# lease (or hands its shard over) within that.
resource "google_cloud_run_v2_service" "connector" {
  count = local.connector_enabled ? 1 : 0

  name     = "${var.name_prefix}-connector"
  location = var.region
  labels   = local.labels

  # Nobody outside Google Cloud needs to reach it; Cloud Run's probes still do.
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = var.deletion_protection
  # Readiness probes are a Preview feature of Cloud Run.
  launch_stage = var.connector_readiness_probe ? "BETA" : null

  template {
    service_account                  = google_service_account.connector.email
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    max_instance_request_concurrency = 10
    labels                           = local.labels

    scaling {
      min_instance_count = local.conduit_mode ? var.conduit_min_instances : 1
      max_instance_count = local.conduit_mode ? var.conduit_max_instances : 1
    }

    containers {
      name  = "connector"
      image = var.connector_image

      ports {
        container_port = 8080 # Cloud Run sets PORT to this
      }

      resources {
        limits = {
          cpu    = var.connector_cpu
          memory = var.connector_memory
        }
        cpu_idle          = false
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.connector_env
        content {
          name  = env.key
          value = env.value
        }
      }

      env {
        name = "TWITCH_CLIENT_SECRET"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.twitch_client_secret.secret_id
            version = "latest"
          }
        }
      }

      # The webhook shards' signing secret, which the connector gives Twitch when it
      # points a shard at EventSubWebhook.
      dynamic "env" {
        for_each = local.connector_uses_webhook ? ["TWITCH_EVENTSUB_WEBHOOK_SECRET"] : []
        content {
          name = env.value
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.webhook_secret.secret_id
              version = "latest"
            }
          }
        }
      }

      # /healthz: the process is alive. Startup gets 60 s; then a stuck process is
      # restarted after 3 failed checks.
      startup_probe {
        period_seconds    = 2
        timeout_seconds   = 2
        failure_threshold = 30
        http_get {
          path = "/healthz"
        }
      }

      liveness_probe {
        period_seconds    = 15
        timeout_seconds   = 5
        failure_threshold = 3
        http_get {
          path = "/healthz"
        }
      }

      # /readyz: socket connected and subscriptions enabled. Failing it only marks the
      # instance not ready (it is not restarted): a Twitch outage must not kill the
      # process that is reconnecting.
      dynamic "readiness_probe" {
        for_each = var.connector_readiness_probe ? ["/readyz"] : []
        content {
          period_seconds    = 10
          timeout_seconds   = 5
          failure_threshold = 3
          success_threshold = 1
          http_get {
            path = readiness_probe.value
          }
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = length(trimspace(var.connector_image)) > 0
      error_message = "connector_image is required: build and push the connector image first (README, Deploy)."
    }
    precondition {
      condition     = !local.conduit_mode || var.conduit_shards <= var.conduit_min_instances
      error_message = "conduit mode: conduit_shards must not exceed conduit_min_instances (one WebSocket shard per instance that always runs; an unheld shard is always disabled and loses notifications whose retry lands on a dead instance's shard)."
    }
    precondition {
      condition     = !local.conduit_mode || var.conduit_max_instances >= var.conduit_min_instances
      error_message = "conduit mode: conduit_max_instances must be at least conduit_min_instances."
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_secret_manager_secret_iam_member.twitch_client_secret,
    google_secret_manager_secret_iam_member.connector_webhook_secret,
    google_pubsub_topic_iam_member.publisher,
    google_project_iam_member.datastore_user,
  ]
}

# In conduit mode with webhook shards the connector signs them with the webhook secret.
resource "google_secret_manager_secret_iam_member" "connector_webhook_secret" {
  count = local.connector_uses_webhook ? 1 : 0

  secret_id = google_secret_manager_secret.webhook_secret.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.connector.member
}

locals {
  connector_env = {
    for n, v in merge(local.common_env, local.twitch_env, {
      # The connector keeps its state and reads the bot's token in the private
      # database (the shared one when there is none).
      FIRESTORE_DATABASE                = local.token_database
      TWITCH_CHANNELS                   = join(",", var.twitch_channels)
      TWITCH_EVENTSUB_WS_URL            = var.twitch_eventsub_ws_url
      TWITCH_EVENTSUB_SUBSCRIPTIONS_URL = var.twitch_eventsub_subscriptions_url
      EVENTSUB_RAW_TOPIC                = var.eventsub_raw_topic
      EVENTSUB_EXTRA_SUBSCRIPTIONS      = var.eventsub_extra_subscriptions
      CONNECTOR_INSTANCE_ID             = var.connector_instance_id
      # Conduit mode (EVENTSUB_TRANSPORT=conduit); in WebSocket mode these stay unset.
      EVENTSUB_TRANSPORT            = local.conduit_mode ? "conduit" : ""
      CONDUIT_SHARDS                = local.conduit_mode ? tostring(var.conduit_shards) : ""
      CONDUIT_WEBHOOK_SHARDS        = local.connector_uses_webhook ? tostring(var.conduit_webhook_shards) : ""
      EVENTSUB_WEBHOOK_CALLBACK_URL = local.connector_uses_webhook ? google_cloudfunctions2_function.webhook.service_config[0].uri : ""
      # A soft heap limit below the container's memory: the GC works harder near it
      # instead of the instance being killed for memory.
      GOMEMLIMIT = var.connector_gomemlimit
    }) : n => v if v != ""
  }
}
