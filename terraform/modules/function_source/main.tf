# Which files make up the Cloud Functions source zip. The rules live in
# infra/bundle/spec.json and are applied here exactly as infra/bundle (Go) applies them:
# module_files as they are; every file under dirs whose repository-relative path matches
# an include regexp and no exclude regexp; plus the generated root package file.
# infra/bundle's TestTerraformAgrees evaluates this module with terraform and compares.
# No providers: it only reads files, so it can be evaluated offline.

locals {
  spec = jsondecode(file("${var.repo_root}/infra/bundle/spec.json"))

  candidates = distinct(flatten([
    for dir in local.spec.dirs : tolist(fileset(var.repo_root, "${dir}/**"))
  ]))

  selected = sort([
    for f in local.candidates : f
    if anytrue([for re in local.spec.include : can(regex(re, f))]) &&
    !anytrue([for re in local.spec.exclude : can(regex(re, f))])
  ])

  contents = merge(
    { for f in concat(local.spec.module_files, local.selected) : f => file("${var.repo_root}/${f}") },
    { (local.spec.root_file) = file("${var.repo_root}/${local.spec.root_file_template}") },
  )
}
