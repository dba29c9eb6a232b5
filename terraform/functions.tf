# The four Cloud Functions (gen2), all built from the same zip. Each is an
# HTTP-triggered function from Cloud Functions' point of view (pubsub.tf explains why
# the triggers are push subscriptions); functions-framework-go serves the CloudEvent
# function named by FUNCTION_TARGET (the entry point) and converts Pub/Sub's push
# envelope into a CloudEvent. Only Pub/Sub's push identity may invoke them
# (iam.tf), and only from inside Google Cloud (ingress: internal only).
resource "google_cloudfunctions2_function" "function" {
  for_each = local.functions

  name     = each.value.name
  location = var.region
  labels   = local.labels

  build_config {
    runtime           = coalesce(var.function_runtime, module.function_source.runtime)
    entry_point       = each.value.entry_point
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
    available_memory                 = each.value.settings.memory
    available_cpu                    = each.value.settings.cpu
    timeout_seconds                  = each.value.settings.timeout_seconds
    min_instance_count               = each.value.settings.min_instances
    max_instance_count               = each.value.settings.max_instances
    max_instance_request_concurrency = each.value.settings.concurrency
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function[each.key].email
    environment_variables            = each.value.env

    dynamic "secret_environment_variables" {
      for_each = each.value.twitch ? ["TWITCH_CLIENT_SECRET"] : []
      content {
        key        = secret_environment_variables.value
        project_id = var.project_id
        secret     = google_secret_manager_secret.twitch_client_secret.secret_id
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_project_iam_member.build,
    google_artifact_registry_repository_iam_member.build_writes_images,
    google_secret_manager_secret_iam_member.twitch_client_secret,
  ]
}
