# Runtime: you should not need to edit this file.
#
# A model evaluation processing job (ContainerEntrypoint ["evaluate"]): the
# training job's model.tar.gz at /opt/ml/processing/model/model.tar.gz is
# unpacked (plain files only) and loaded with load_model(), as serving does; the
# test set at /opt/ml/processing/test (the training channel's format, read by
# read_table()) is predicted; /opt/ml/processing/evaluation/evaluation.json gets
# SageMaker's model quality metrics (evaluation.R) and PNG plots go beside it
# when this R can write PNGs. A one-line summary goes to /opt/ml/output/message;
# any error to /opt/ml/output/failure (and /opt/ml/output/message, the processing job's
# ExitMessage), with exit status 1.

#' The directory of this file (Rscript passes it as --file=).
program_dir <- function() {
  file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  dirname(normalizePath(file))
}

#' Run one evaluation.
main <- function() {
  archive <- opt_ml_path("processing", "model", "model.tar.gz")
  if (!file.exists(archive)) {
    stop(sprintf(paste("no model archive at %s: give the training job's model.tar.gz as the",
                       "processing input 'model'"), archive), call. = FALSE)
  }
  scratch <- unpack_archive(archive, tempfile("model-"))
  on.exit(unlink(scratch, recursive = TRUE), add = TRUE)
  model <- tryCatch(load_model(scratch), error = function(e) {
    stop(sprintf("cannot load the model from %s: %s", archive, conditionMessage(e)), call. = FALSE)
  })
  test_dir <- opt_ml_path("processing", "test")
  files <- channel_files("test", test_dir)
  inputs <- stats::setNames(lapply(files, function(f) readBin(f, "raw", n = file.size(f))), files)
  data <- read_table("test", inputs = inputs)
  cat(sprintf("channel test: %d rows\n", length(data$labels)))
  if (ncol(data$features) != n_features(model)) {
    stop(sprintf("the test set has %d feature columns, the model takes %d", ncol(data$features),
                 n_features(model)), call. = FALSE)
  }
  predicted <- predict_rows(model, data$features)
  classes <- if (exists("model_classes")) model_classes(model) else
    if (is.numeric(predicted)) NULL else sort(unique(as.character(predicted)))
  out <- opt_ml_path("processing", "evaluation")
  dir.create(out, showWarnings = FALSE, recursive = TRUE)
  plots <- can_plot()
  if (is.null(classes)) {
    truth <- suppressWarnings(as.numeric(data$labels))
    if (anyNA(truth)) stop("a regressor's test labels must be numbers", call. = FALSE)
    report <- regression_metrics(truth, as.numeric(predicted))
    if (plots) plot_regression(truth, as.numeric(predicted), file.path(out, "predicted_vs_actual.png"))
  } else {
    classes <- as.character(classes)
    unknown <- sort(setdiff(unique(data$labels), classes))
    if (length(unknown) > 0) {
      stop(sprintf("test labels [%s] are not among the model's classes [%s]: the model never saw them",
                   paste0("'", utils::head(unknown, 5), "'", collapse = ", "),
                   paste0("'", utils::head(classes, 10), "'", collapse = ", ")), call. = FALSE)
    }
    probabilities <- if (exists("predict_probabilities")) predict_probabilities(model, data$features)
    report <- classification_metrics(data$labels, as.character(predicted), classes, probabilities)
    if (plots) {
      plot_confusion(confusion_counts(data$labels, as.character(predicted), classes), classes,
                     file.path(out, "confusion_matrix.png"))
      if (!is.null(probabilities)) plot_roc(data$labels, probabilities, classes,
                                            file.path(out, "roc_curve.png"))
    }
  }
  if (!plots) {
    report[[1]]$plots <- "skipped: this R cannot write PNG files (capabilities('png') is FALSE)"
  }
  writing <- file.path(out, ".evaluation.json.writing")
  jsonlite::write_json(report, writing, auto_unbox = TRUE, digits = NA, pretty = TRUE)
  file.rename(writing, file.path(out, "evaluation.json"))
  summary <- evaluation_summary(report, length(data$labels))
  cat(summary, "\n", sep = "")
  dir.create(opt_ml_path("output"), showWarnings = FALSE, recursive = TRUE)
  writeLines(summary, opt_ml_path("output", "message"))
}

tryCatch({
  for (part in c("contract.R", "channels.R", "data.R", "model.R", "evaluation.R")) {
    source(file.path(program_dir(), part))
  }
  main()
}, error = function(e) {
  write_failure(conditionMessage(e), job = "Evaluation")
  # the reason is also the processing job's ExitMessage, where SageMaker Processing shows it
  reason <- gsub("\\s+", " ", trimws(conditionMessage(e)))
  writeLines(substr(reason, 1, failure_reason_limit), opt_ml_path("output", "message"))
  quit(save = "no", status = 1L)
})
