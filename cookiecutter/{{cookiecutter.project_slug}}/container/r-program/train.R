# Runtime: you should not need to edit this file.
#
# SageMaker's training job, in R: typed hyperparameters, the `training` channel
# (and an optional `validation` one) in any input mode, a warm start from the
# `model` channel (incremental training), a checkpoint after every epoch and a
# resume from the latest one, metrics printed per epoch as
# `epoch=<n> <channel>:<name>=<value>;`, and the model saved to /opt/ml/model.
# Any error ends in /opt/ml/output/failure and exit status 1; a stop request
# (SIGTERM, caught by the `train` wrapper) saves the model so far and exits 143.

#' The directory of this file (Rscript passes it as --file=).
program_dir <- function() {
  file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  dirname(normalizePath(file))
}

training_channel <- "training"
validation_channel <- "validation"
exit_stopped <- 143L

#' Run one training job.
main <- function() {
  hp <- parse_hyperparameters(hyperparameter_schema)
  resources <- read_config("resourceconfig.json", list(current_host = "algo-1"))
  host <- resources$current_host %||% "algo-1"
  hosts <- sort(unlist(resources$hosts %||% list(host)))
  configs <- channel_configs()
  cat(sprintf("%s: hosts %s; hyperparameters %s\n", host, paste(hosts, collapse = ", "),
              jsonlite::toJSON(hp, auto_unbox = TRUE, digits = NA)))
  training <- read_table(training_channel)
  cat(sprintf("%s: channel %s: %d rows\n", host, training_channel, length(training$labels)))
  validation <- NULL
  if (!is.null(configs[[validation_channel]])) {
    validation <- read_table(validation_channel, like = training)
    cat(sprintf("%s: channel %s: %d rows\n", host, validation_channel, length(validation$labels)))
  }
  state <- new_model(training, hp, previous_model(configs))
  checkpoints <- checkpoint_dir()
  state <- resume(state, checkpoints, host)
  stopped <- FALSE
  while (state$epoch < hp$epochs) {
    if (stop_requested()) {
      stopped <- TRUE
      break
    }
    state <- fit_epoch(state, training, hp)
    scores <- list(model_metrics(state, training))
    names(scores) <- training_channel
    if (!is.null(validation)) scores[[validation_channel]] <- model_metrics(state, validation)
    report(state$epoch, scores)
    if (!is.null(checkpoints)) keep_checkpoint(state, checkpoints, host)
  }
  if (host != hosts[[1]]) {
    cat(sprintf("%s: not the first host; the model is saved by %s\n", host, hosts[[1]]))
  } else {
    saved <- write_model(state)
    cat(sprintf("%s: model saved to %s: %s\n", host, opt_ml_path("model"),
                paste(saved, collapse = ", ")))
  }
  if (stopped) {
    write_failure(sprintf(paste("Training stopped: SIGTERM received after epoch %d of %d;",
                                "the model so far is saved"), state$epoch, hp$epochs))
    quit(save = "no", status = exit_stopped)
  }
  cat(sprintf("%s: training done: %d epochs\n", host, state$epoch))
}

#' Print one epoch's metrics on one line, e.g. `epoch=3 training:loss=0.41; training:accuracy=0.9;`
#' (a MetricDefinition regex such as `training:loss=([-+0-9.eE]+);` reads them).
#' @param epoch the epoch just finished
#' @param scores named list: each channel's named metric values
report <- function(epoch, scores) {
  parts <- unlist(Map(function(values, channel) {
    paste0(channel, ":", names(values), "=", sprintf("%.6g", values), ";")
  }, scores, names(scores)), use.names = FALSE)
  cat("epoch=", epoch, " ", paste(parts, collapse = " "), "\n", sep = "")
  flush(stdout())
}

#' The model of the `model` channel (incremental training): a model.tar.gz in it
#' is unpacked first; NULL without the channel.
previous_model <- function(configs) {
  if (is.null(configs[["model"]])) return(NULL)
  files <- channel_files("model")
  archives <- files[endsWith(files, ".tar.gz")]
  if (length(archives) == 0) {
    cat("previous model: the model channel's files\n")
    return(load_model(opt_ml_path("input", "data", "model")))
  }
  scratch <- unpack_archive(archives[[1]], tempfile("previous-model-"))
  cat(sprintf("previous model unpacked from %s\n", archives[[1]]))
  load_model(scratch)
}

#' The checkpoint files of this host, oldest first.
checkpoint_files <- function(checkpoints, host) {
  sort(list.files(checkpoints, pattern = sprintf("^%s-epoch-[0-9]+\\.rds$", host),
                  full.names = TRUE))
}

#' Continue from this host's latest checkpoint, if there is one.
resume <- function(state, checkpoints, host) {
  if (is.null(checkpoints)) return(state)
  found <- checkpoint_files(checkpoints, host)
  if (length(found) == 0) return(state)
  latest <- found[[length(found)]]
  cat(sprintf("resuming from checkpoint %s\n", basename(latest)))
  readRDS(latest)
}

#' Save the state as this epoch's checkpoint and keep only the last two.
keep_checkpoint <- function(state, checkpoints, host) {
  save_atomically(state, file.path(checkpoints, sprintf("%s-epoch-%06d.rds", host, state$epoch)))
  found <- checkpoint_files(checkpoints, host)
  if (length(found) > 2) file.remove(utils::head(found, -2))
}

#' Have save_model() write into a staging directory, then move what it wrote
#' into /opt/ml/model: no file appears half-written.
#' @return the names of the files saved
write_model <- function(state) {
  target <- opt_ml_path("model")
  dir.create(target, showWarnings = FALSE, recursive = TRUE)
  staging <- tempfile(".saving-", tmpdir = target)
  dir.create(staging)
  on.exit(unlink(staging, recursive = TRUE))
  save_model(state, staging)
  saved <- list.files(staging, all.files = TRUE, no.. = TRUE)
  if (length(saved) == 0) stop("save_model wrote no file into the directory it was given",
                               call. = FALSE)
  for (name in saved) {
    if (!file.rename(file.path(staging, name), file.path(target, name))) {
      stop(sprintf("cannot move %s into %s", name, target), call. = FALSE)
    }
  }
  saved
}

#' Run `main`, turning any error into the failure file and exit status 1.
run_job <- function() {
  tryCatch({
    for (part in c("contract.R", "channels.R", "data.R", "model.R")) {
      source(file.path(program_dir(), part))
    }
    main()
  }, training_stopped = function(e) {
    write_failure(conditionMessage(e))
    quit(save = "no", status = exit_stopped)
  }, error = function(e) {
    write_failure(conditionMessage(e))
    quit(save = "no", status = 1L)
  })
  invisible(0L)
}

run_job()
