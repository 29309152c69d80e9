# Loads the program's R files for the tests (testthat runs this file first).
program_dir <- normalizePath(file.path("..", "..", "container", "{{ cookiecutter.program }}"))
test_dir_template <- normalizePath(file.path("..", "..", "local_test", "test_dir"))
test_set <- normalizePath(file.path("..", "..", "local_test", "test"))
for (part in c("contract.R", "channels.R", "data.R", "model.R", "payloads.R", "evaluation.R")) {
  source(file.path(program_dir, part))
}

#' A fresh copy of local_test/test_dir to train in, as SageMaker's /opt/ml.
#' @param hyperparameters a named list of strings for hyperparameters.json, or NULL to keep it
new_opt_ml <- function(hyperparameters = NULL) {
  root <- tempfile("opt-ml-")
  dir.create(root)
  file.copy(list.files(test_dir_template, full.names = TRUE), root, recursive = TRUE)
  dir.create(file.path(root, "model"))
  dir.create(file.path(root, "output"))
  if (!is.null(hyperparameters)) {
    jsonlite::write_json(hyperparameters, file.path(root, "input", "config", "hyperparameters.json"),
                         auto_unbox = TRUE)
  }
  root
}

#' Run the program's `train` under `root`; return its exit status and output lines.
run_train <- function(root) {
  output <- suppressWarnings(system2(file.path(program_dir, "train"), stdout = TRUE, stderr = TRUE,
                                     env = paste0("SAGEMAKER_BASE_DIR=", root)))
  list(status = attr(output, "status") %||% 0L, output = output)
}

#' Run the program's `evaluate` under `root`; return its exit status and output lines.
run_evaluate <- function(root) {
  output <- suppressWarnings(system2(file.path(program_dir, "evaluate"), stdout = TRUE, stderr = TRUE,
                                     env = paste0("SAGEMAKER_BASE_DIR=", root)))
  list(status = attr(output, "status") %||% 0L, output = output)
}
