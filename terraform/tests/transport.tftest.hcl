# The EventSub transports (variables.tf, eventsub_transport), checked on the plan
# offline (terraform/test.sh, mock providers): WebSocket mode's one connector
# instance, conduit mode's 2+ instances and webhook shards, serverless mode's
# EventSubReconcile on a schedule with no connector; least privilege in each, and the
# webhook the only public function in each.

mock_provider "google" {
  mock_data "google_project" {
    defaults = { number = "123456789" }
  }
}
mock_provider "archive" {}

variables {
  project_id       = "proj"
  twitch_client_id = "client"
  connector_image  = "img"
  twitch_channels  = ["bitbrat_demo"]
}

run "websocket_by_default" {
  command = apply

  assert {
    condition     = google_cloud_run_v2_service.connector[0].template[0].scaling[0].min_instance_count == 1 && google_cloud_run_v2_service.connector[0].template[0].scaling[0].max_instance_count == 1
    error_message = "WebSocket mode runs exactly one connector instance"
  }
  assert {
    condition     = length([for e in google_cloud_run_v2_service.connector[0].template[0].containers[0].env : e.name if startswith(e.name, "CONDUIT_") || e.name == "EVENTSUB_TRANSPORT"]) == 0
    error_message = "WebSocket mode sets no conduit variables"
  }
  assert {
    condition     = length(google_cloudfunctions2_function.reconcile) == 0 && length(google_cloud_scheduler_job.reconcile) == 0
    error_message = "EventSubReconcile runs in serverless mode only"
  }
  assert {
    condition     = length(google_secret_manager_secret_iam_member.connector_webhook_secret) == 0
    error_message = "the connector reads the webhook secret only when it keeps webhook shards"
  }
  assert {
    condition     = google_pubsub_topic_iam_member.publisher["connector/ingress"].topic == google_pubsub_topic.topic["ingress"].id
    error_message = "the connector publishes its status events to internal.ingress.v1"
  }
}

run "conduit_mode" {
  command = apply

  variables {
    eventsub_transport     = "conduit"
    conduit_shards         = 2
    conduit_webhook_shards = 1
  }

  assert {
    condition     = google_cloud_run_v2_service.connector[0].template[0].scaling[0].min_instance_count == 2 && google_cloud_run_v2_service.connector[0].template[0].scaling[0].max_instance_count == 4
    error_message = "conduit mode runs 2+ connector instances"
  }
  assert {
    condition = alltrue([for k, v in { EVENTSUB_TRANSPORT = "conduit", CONDUIT_SHARDS = "2", CONDUIT_WEBHOOK_SHARDS = "1" } :
    contains([for e in google_cloud_run_v2_service.connector[0].template[0].containers[0].env : e.value if e.name == k], v)])
    error_message = "the connector gets EVENTSUB_TRANSPORT=conduit, CONDUIT_SHARDS and CONDUIT_WEBHOOK_SHARDS"
  }
  assert {
    condition = contains([for e in google_cloud_run_v2_service.connector[0].template[0].containers[0].env : e.value if e.name == "EVENTSUB_WEBHOOK_CALLBACK_URL"],
    google_cloudfunctions2_function.webhook.service_config[0].uri)
    error_message = "the webhook shards point at EventSubWebhook's URL"
  }
  assert {
    condition = alltrue([for n in ["TWITCH_CLIENT_SECRET", "TWITCH_EVENTSUB_WEBHOOK_SECRET"] :
    length([for e in google_cloud_run_v2_service.connector[0].template[0].containers[0].env : e.name if e.name == n && length(e.value_source) == 1]) == 1])
    error_message = "the client secret (app token) and the webhook secret come from Secret Manager"
  }
  assert {
    condition     = google_secret_manager_secret_iam_member.connector_webhook_secret[0].member == google_service_account.connector.member
    error_message = "the connector may read the webhook secret"
  }
  assert {
    condition     = google_project_iam_member.datastore_user["connector/twitch-edge-private"].condition[0].expression == "resource.name == \"projects/proj/databases/twitch-edge-private\""
    error_message = "the conduit's records and the app token live in the private database"
  }
  assert {
    condition     = google_cloudfunctions2_function.webhook.service_config[0].ingress_settings == "ALLOW_ALL" && alltrue([for f in google_cloudfunctions2_function.function : f.service_config[0].ingress_settings == "ALLOW_INTERNAL_ONLY"])
    error_message = "the webhook stays the only public function"
  }
  assert {
    condition     = length(google_cloudfunctions2_function.reconcile) == 0
    error_message = "in conduit mode the connector reconciles, not EventSubReconcile"
  }
}

# The layout rule: one WebSocket shard per instance that always runs.
run "conduit_more_shards_than_instances_refused" {
  command = plan

  variables {
    eventsub_transport = "conduit"
    conduit_shards     = 3
  }

  expect_failures = [google_cloud_run_v2_service.connector]
}

run "conduit_one_instance_refused" {
  command = plan

  variables {
    eventsub_transport    = "conduit"
    conduit_min_instances = 1
  }

  expect_failures = [var.conduit_min_instances]
}

run "serverless_mode" {
  command = apply

  variables {
    eventsub_transport     = "serverless"
    conduit_webhook_shards = 1
    connector_image        = ""
  }

  assert {
    condition     = length(google_cloud_run_v2_service.connector) == 0 && output.connector_url == null
    error_message = "serverless mode runs no connector"
  }
  assert {
    condition     = length([for k in keys(google_project_iam_member.datastore_user) : k if startswith(k, "connector/")]) == 0 && length([for k in keys(google_pubsub_topic_iam_member.publisher) : k if startswith(k, "connector/")]) == 0 && !contains(keys(google_secret_manager_secret_iam_member.twitch_client_secret), "connector")
    error_message = "without a connector its identity gets no grants"
  }
  assert {
    condition     = google_cloudfunctions2_function.reconcile[0].build_config[0].entry_point == "EventSubReconcile" && google_cloudfunctions2_function.reconcile[0].service_config[0].ingress_settings == "ALLOW_INTERNAL_ONLY"
    error_message = "EventSubReconcile is deployed, internal only"
  }
  assert {
    condition     = google_cloudfunctions2_function.reconcile[0].service_config[0].max_instance_count == 1 && google_cloudfunctions2_function.reconcile[0].service_config[0].timeout_seconds == 60
    error_message = "one tick at a time, within the function's timeout"
  }
  assert {
    condition = alltrue([for k, v in { CONDUIT_WEBHOOK_SHARDS = "1", FIRESTORE_DATABASE = "twitch-edge-private", TWITCH_CHANNELS = "bitbrat_demo" } :
    google_cloudfunctions2_function.reconcile[0].service_config[0].environment_variables[k] == v])
    error_message = "EventSubReconcile gets its webhook shards, the connector's database and the channels"
  }
  assert {
    condition     = google_cloudfunctions2_function.reconcile[0].service_config[0].environment_variables["EVENTSUB_WEBHOOK_CALLBACK_URL"] == google_cloudfunctions2_function.webhook.service_config[0].uri
    error_message = "the webhook shards point at EventSubWebhook's URL"
  }
  assert {
    condition     = toset([for s in google_cloudfunctions2_function.reconcile[0].service_config[0].secret_environment_variables : s.key]) == toset(["TWITCH_CLIENT_SECRET", "TWITCH_EVENTSUB_WEBHOOK_SECRET"])
    error_message = "the client secret and the webhook secret come from Secret Manager"
  }
  assert {
    condition     = google_project_iam_member.reconcile_datastore_user[0].condition[0].expression == "resource.name == \"projects/proj/databases/twitch-edge-private\""
    error_message = "EventSubReconcile reaches the connector's (private) database only"
  }
  assert {
    condition     = google_pubsub_topic_iam_member.reconcile_publishes_status[0].topic == google_pubsub_topic.topic["ingress"].id
    error_message = "EventSubReconcile publishes only its status events, to internal.ingress.v1"
  }
  assert {
    condition     = google_cloud_scheduler_job.reconcile[0].schedule == "* * * * *" && google_cloud_scheduler_job.reconcile[0].pubsub_target[0].topic_name == google_pubsub_topic.reconcile_tick[0].id
    error_message = "Cloud Scheduler ticks the reconcile topic every minute"
  }
  assert {
    condition     = google_pubsub_subscription.reconcile_tick[0].push_config[0].oidc_token[0].service_account_email == google_service_account.push.email && google_cloud_run_service_iam_member.push_invokes_reconcile[0].member == google_service_account.push.member
    error_message = "only the push identity invokes EventSubReconcile"
  }
  assert {
    condition     = google_pubsub_topic_iam_member.scheduler_publishes_ticks[0].member == "serviceAccount:service-123456789@gcp-sa-cloudscheduler.iam.gserviceaccount.com"
    error_message = "Cloud Scheduler's agent publishes the ticks, on the tick topic only"
  }
  assert {
    condition     = google_cloud_run_service_iam_member.webhook_public.member == "allUsers" && google_cloudfunctions2_function.webhook.service_config[0].ingress_settings == "ALLOW_ALL"
    error_message = "the webhook is public in serverless mode too (the conduit's only shards)"
  }
  assert {
    condition     = contains(keys(google_project_service.enabled), "cloudscheduler.googleapis.com")
    error_message = "Cloud Scheduler's API is enabled in serverless mode"
  }
}

run "serverless_without_webhook_shards_refused" {
  command = plan

  variables {
    eventsub_transport = "serverless"
  }

  expect_failures = [google_cloudfunctions2_function.reconcile]
}

run "unknown_transport_refused" {
  command = plan

  variables {
    eventsub_transport = "webhooks"
  }

  expect_failures = [var.eventsub_transport]
}
