# The functions' source: one zip of the Go module, built here from the repository by
# the rules in infra/bundle/spec.json (modules/function_source; infra/bundle writes the
# same zip with Go and its tests build it the way Cloud Functions' Go builder does).
module "function_source" {
  source = "./modules/function_source"

  repo_root = "${path.module}/.."
}

data "archive_file" "function_source" {
  type        = "zip"
  output_path = "${path.module}/.build/function-source.zip"

  dynamic "source" {
    for_each = module.function_source.files
    content {
      filename = source.key
      content  = source.value
    }
  }
}

resource "google_storage_bucket" "source" {
  name     = "${var.project_id}-${var.name_prefix}-source"
  location = var.region
  labels   = local.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true # only build inputs live here

  depends_on = [google_project_service.enabled]
}

# Named after the zip's MD5, so any change to the code is a new object and redeploys
# every function; an unchanged tree keeps the name and deploys nothing.
resource "google_storage_bucket_object" "function_source" {
  name   = "function-source-${data.archive_file.function_source.output_md5}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.function_source.output_path
}
