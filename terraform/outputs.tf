output "topics" {
  description = "Topic names (BUS_PREFIX applied), keyed raw, ingress, egress, whisper, finalize, deadletter and egress.<instanceId>."
  value       = { for k, t in google_pubsub_topic.topic : k => t.name }
}

output "deadletter_subscription" {
  description = "Pull subscription that keeps what lands on the dead-letter topic (gcloud pubsub subscriptions pull ...)."
  value       = google_pubsub_subscription.deadletter_inspect.name
}

output "trigger_subscriptions" {
  description = "Push subscriptions that drive the functions, keyed function/topic."
  value       = { for k, s in google_pubsub_subscription.trigger : k => s.name }
}

output "function_names" {
  description = "Cloud Functions names, keyed by entry point."
  value       = { for k, f in google_cloudfunctions2_function.function : local.functions[k].entry_point => f.name }
}

output "function_uris" {
  description = "The functions' URLs (internal ingress, IAM-protected: only Pub/Sub's push identity may invoke them)."
  value       = { for k, f in google_cloudfunctions2_function.function : local.functions[k].entry_point => f.service_config[0].uri }
}

output "connector_url" {
  description = "URL of the connector's Cloud Run service (internal ingress; /healthz, /readyz); null in serverless mode."
  value       = one(google_cloud_run_v2_service.connector[*].uri)
}

output "connector_service" {
  description = "Name of the connector's Cloud Run service (for gcloud run services ...); null in serverless mode."
  value       = one(google_cloud_run_v2_service.connector[*].name)
}

output "image_repository" {
  description = "Where to push the connector image: <this>/connector:<tag>."
  value       = "${google_artifact_registry_repository.images.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "twitch_client_secret_id" {
  description = "Secret Manager secret (the name, never the value) to add the Twitch client secret to."
  value       = google_secret_manager_secret.twitch_client_secret.secret_id
}

output "service_accounts" {
  description = "Service account emails, keyed by function (normalize, ...), connector, push and build."
  value = merge(
    { for k, sa in google_service_account.function : k => sa.email },
    {
      connector = google_service_account.connector.email
      push      = google_service_account.push.email
      build     = google_service_account.build.email
    },
  )
}

output "function_source_object" {
  description = "The uploaded source zip (named after its MD5)."
  value       = "gs://${google_storage_bucket.source.name}/${google_storage_bucket_object.function_source.name}"
}

output "webhook_callback_url" {
  description = "EventSubWebhook's URL: the callback of webhook shards and webhook subscriptions (public; Twitch's signature is checked)."
  value       = google_cloudfunctions2_function.webhook.service_config[0].uri
}

output "eventsub_transport" {
  description = "The EventSub transport deployed: websocket, conduit or serverless."
  value       = var.eventsub_transport
}

output "reconcile_function" {
  description = "Serverless mode: EventSubReconcile's function name and the topic its Cloud Scheduler job publishes ticks to; null otherwise."
  value = local.serverless ? {
    name          = google_cloudfunctions2_function.reconcile[0].name
    tick_topic    = google_pubsub_topic.reconcile_tick[0].name
    scheduler_job = google_cloud_scheduler_job.reconcile[0].name
  } : null
}
