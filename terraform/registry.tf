# One Docker repository for the connector's image (pushed by hand or by CI, see README)
# and the images Cloud Build makes of the functions. Old untagged images are removed so
# that every deploy does not add to the storage bill forever; the newest ten stay for
# rollback.
resource "google_artifact_registry_repository" "images" {
  repository_id = var.name_prefix
  location      = var.region
  format        = "DOCKER"
  labels        = local.labels

  cleanup_policies {
    id     = "keep-newest-ten"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  cleanup_policies {
    id     = "delete-untagged-after-30-days"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.enabled]
}
