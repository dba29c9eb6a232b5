# Topics, BUS_PREFIX applied. Topic retention keeps messages for seeking and replay even
# when no subscription has them (e.g. internal.ingress.v1 before upstream subscribes).
resource "google_pubsub_topic" "topic" {
  for_each = local.topics

  name                       = each.value
  message_retention_duration = var.message_retention
  labels                     = local.labels

  depends_on = [google_project_service.enabled]
}

# The functions' triggers. Each function is driven by a push subscription of our own
# rather than an Eventarc trigger, because Eventarc creates its subscription itself and
# Terraform cannot give it a dead-letter policy. Pub/Sub pushes the standard push
# envelope to the function's URL; functions-framework-go turns it into the same
# messagePublished CloudEvent Eventarc would send, taking the topic (the event's
# source) from the /projects/P/topics/T path of the endpoint. A non-2xx answer is
# retried with exponential backoff and, after max_delivery_attempts, the message moves
# to the dead-letter topic with CloudPubSubDeadLetterSource* attributes.
resource "google_pubsub_subscription" "trigger" {
  for_each = local.triggers

  name  = "${local.topics[each.value.topic]}.${local.functions[each.value.function].name}"
  topic = google_pubsub_topic.topic[each.value.topic].id

  # The function may take its whole timeout before it answers.
  ack_deadline_seconds       = local.functions[each.value.function].settings.timeout_seconds
  message_retention_duration = var.message_retention
  labels                     = local.labels

  push_config {
    push_endpoint = "${google_cloudfunctions2_function.function[each.value.function].service_config[0].uri}/projects/${var.project_id}/topics/${local.topics[each.value.topic]}"

    oidc_token {
      service_account_email = google_service_account.push.email
      # Cloud Run checks the token's audience against the service URL, without the path.
      audience = google_cloudfunctions2_function.function[each.value.function].service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = var.retry_min_backoff
    maximum_backoff = var.retry_max_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.topic["deadletter"].id
    max_delivery_attempts = local.functions[each.value.function].settings.max_delivery_attempts
  }

  expiration_policy {
    ttl = "" # never expires, however quiet the topic
  }

  depends_on = [
    google_cloud_run_service_iam_member.push_invokes_function,
    google_pubsub_topic_iam_member.pubsub_agent_dead_letters,
    google_service_account_iam_member.pubsub_agent_mints_push_tokens,
  ]
}

# Nothing consumes the dead-letter topic here: this pull subscription keeps what lands
# there for inspection (README: "Dead letters"). It holds both the functions' own
# system.deadletter.v1 records and messages Pub/Sub gave up on (those carry the
# CloudPubSubDeadLetterSourceSubscription attribute).
resource "google_pubsub_subscription" "deadletter_inspect" {
  name  = "${local.topics["deadletter"]}.${var.name_prefix}-inspect"
  topic = google_pubsub_topic.topic["deadletter"].id

  ack_deadline_seconds       = 60
  message_retention_duration = var.message_retention
  labels                     = local.labels

  expiration_policy {
    ttl = ""
  }
}
