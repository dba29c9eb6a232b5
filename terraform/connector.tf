# The connector: the always-on holder of the EventSub WebSocket. Exactly one instance
# (min = max = 1) with its CPU always allocated (cpu_idle = false: no throttling between
# requests, since its work is the socket, not requests). A deploy briefly runs the old
# and the new revision side by side; the connector's Firestore lease lets only one hold
# the EventSub session. On SIGTERM Cloud Run allows 10 seconds before SIGKILL: the
# connector flushes pending publishes and releases the lease within that.
resource "google_cloud_run_v2_service" "connector" {
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
      min_instance_count = 1
      max_instance_count = 1
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

  depends_on = [
    google_project_service.enabled,
    google_secret_manager_secret_iam_member.twitch_client_secret,
    google_pubsub_topic_iam_member.publisher,
    google_project_iam_member.datastore_user,
  ]
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
      # A soft heap limit below the container's memory: the GC works harder near it
      # instead of the instance being killed for memory.
      GOMEMLIMIT = var.connector_gomemlimit
    }) : n => v if v != ""
  }
}
