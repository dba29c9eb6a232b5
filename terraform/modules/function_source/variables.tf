variable "repo_root" {
  description = "Path of the repository root (the directory holding go.mod and infra/bundle/spec.json)."
  type        = string
}
