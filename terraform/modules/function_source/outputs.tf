output "files" {
  description = "Map of path inside the zip to file content (UTF-8 text), for archive_file source blocks."
  value       = local.contents
}

output "runtime" {
  description = "The Cloud Functions Go runtime the bundle is built for (spec.json's runtime)."
  value       = local.spec.runtime
}
