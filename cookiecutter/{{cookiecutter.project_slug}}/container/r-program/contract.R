# Runtime: you should not need to edit this file.
#
# The SageMaker training contract in R: where /opt/ml lives, the JSON config
# files, typed hyperparameters (SageMaker sends every value as a string), the
# failure file, checkpoints, and the stop flag the `train` wrapper raises on
# SIGTERM. SAGEMAKER_BASE_DIR moves /opt/ml (byoc runs the programs as plain
# processes that way).

#' SageMaker shows this many characters of output/failure as FailureReason.
failure_reason_limit <- 1024L

#' The root of the container contract: /opt/ml, or SAGEMAKER_BASE_DIR.
opt_ml <- function() {
  base <- Sys.getenv("SAGEMAKER_BASE_DIR", "")
  if (nzchar(base)) base else "/opt/ml"
}

#' A path under the /opt/ml root.
#' @param ... path parts, as for file.path
opt_ml_path <- function(...) file.path(opt_ml(), ...)

#' Null default: `a` unless it is NULL.
`%||%` <- function(a, b) if (is.null(a)) b else a

#' Why jsonlite could not parse a document, in one line. Deep nesting ([[[[...)
#' exhausts one of R's stacks: say so, rather than R's internal message.
#' @param e the error jsonlite raised
json_problem <- function(e) {
  message <- conditionMessage(e)
  if (inherits(e, "stackOverflowError") ||
      grepl("stack overflow|stack usage|nested too deeply", message, ignore.case = TRUE)) {
    return("nested too deeply")
  }
  strsplit(message, "\n", fixed = TRUE)[[1]][[1]]
}

#' Read one of SageMaker's JSON config files from /opt/ml/input/config.
#' @param name file name, e.g. "hyperparameters.json"
#' @param default returned when the file does not exist; NULL makes it required
#' @return a named list
read_config <- function(name, default = list()) {
  path <- opt_ml_path("input", "config", name)
  if (!file.exists(path)) {
    if (is.null(default)) stop(sprintf("%s is missing: SageMaker writes it for every job", path),
                               call. = FALSE)
    return(default)
  }
  parsed <- tryCatch(jsonlite::fromJSON(path, simplifyVector = FALSE),
                     error = function(e) stop(sprintf("%s is not valid JSON: %s", path,
                                                      json_problem(e)), call. = FALSE))
  if (!is.list(parsed) || (length(parsed) > 0 && is.null(names(parsed)))) {
    stop(sprintf("%s must hold a JSON object", path), call. = FALSE)
  }
  parsed
}

#' Hyperparameter specs for `hyperparameter_schema` in model.R.
#'
#' `hp_integer`, `hp_double`, `hp_logical` and `hp_choice` describe one
#' hyperparameter each: its type, default and allowed values.
#' @param default the value when the job does not set it
#' @param min,max inclusive bounds (NULL: none)
#' @param choices the allowed strings of `hp_choice`
hp_integer <- function(default, min = NULL, max = NULL) {
  list(type = "integer", default = default, min = min, max = max)
}

#' @rdname hp_integer
hp_double <- function(default, min = NULL, max = NULL) {
  list(type = "double", default = default, min = min, max = max)
}

#' @rdname hp_integer
hp_logical <- function(default) list(type = "logical", default = default)

#' @rdname hp_integer
hp_choice <- function(choices, default = choices[[1]]) {
  list(type = "choice", default = default, choices = choices)
}

#' Undo the SageMaker Python SDK's JSON encoding of a value ("\"adam\"" -> "adam").
unwrap_value <- function(raw) {
  if (!is.character(raw)) {
    # Not what CreateTrainingJob sends, but a hand-written file may hold it.
    return(as.character(jsonlite::toJSON(raw, auto_unbox = TRUE)))
  }
  text <- trimws(raw)
  if (nchar(text) >= 2 && startsWith(text, "\"") && endsWith(text, "\"")) {
    decoded <- tryCatch(jsonlite::fromJSON(text), error = function(e) NULL)
    if (is.character(decoded) && length(decoded) == 1) return(trimws(decoded))
  }
  text
}

#' Quote a value for a message, cut short when long (values may hold 2500 characters).
shown <- function(text) {
  if (nchar(text) <= 40) return(sprintf("'%s'", text))
  sprintf("'%s'... (%d characters)", substr(text, 1, 40), nchar(text))
}

#' Convert one hyperparameter's text by its spec.
#' @return the typed value; stops with the reason when the text does not fit
convert_value <- function(spec, text) {
  if (spec$type %in% c("integer", "double")) {
    number <- suppressWarnings(as.numeric(text))
    if (is.na(number) || !is.finite(number)) {
      stop(sprintf("expected %s, got %s", if (spec$type == "integer") "an integer" else "a number",
                   shown(text)), call. = FALSE)
    }
    if (spec$type == "integer" && (number != round(number) || abs(number) > .Machine$integer.max)) {
      stop(sprintf("expected an integer, got %s", shown(text)), call. = FALSE)
    }
    if (!is.null(spec$min) && number < spec$min) {
      stop(sprintf("must be at least %s, got %s", format(spec$min), text), call. = FALSE)
    }
    if (!is.null(spec$max) && number > spec$max) {
      stop(sprintf("must be at most %s, got %s", format(spec$max), text), call. = FALSE)
    }
    return(if (spec$type == "integer") as.integer(number) else number)
  }
  if (spec$type == "logical") {
    lowered <- tolower(text)
    if (lowered %in% c("true", "1", "yes")) return(TRUE)
    if (lowered %in% c("false", "0", "no")) return(FALSE)
    stop(sprintf("expected true or false, got %s", shown(text)), call. = FALSE)
  }
  if (spec$type == "choice") {
    if (!text %in% spec$choices) {
      stop(sprintf("expected one of %s; got %s", paste(spec$choices, collapse = ", "), shown(text)),
           call. = FALSE)
    }
    return(text)
  }
  stop(sprintf("unknown hyperparameter type '%s'", spec$type), call. = FALSE)
}

#' Typed hyperparameters: the job's string values checked against `schema`.
#'
#' Keys starting with `sagemaker_`, and `_tuning_objective_metric` (added by a hyperparameter
#' tuning job), belong to the platform and are ignored.
#' @param schema named list of specs (`hp_integer()`, `hp_double()`, ...)
#' @param raw the job's values (default: hyperparameters.json)
#' @return a named list with every name of `schema`, defaults filled in; stops
#'   naming every unknown or bad key
parse_hyperparameters <- function(schema, raw = read_config("hyperparameters.json")) {
  values <- lapply(schema, function(spec) spec$default)
  problems <- character(0)
  for (key in sort(names(raw))) {
    if (startsWith(key, "sagemaker_") || key == "_tuning_objective_metric") next
    spec <- schema[[key]]
    if (is.null(spec)) {
      problems <- c(problems, sprintf("unknown hyperparameter '%s' (valid: %s)", key,
                                      paste(sort(names(schema)), collapse = ", ")))
      next
    }
    converted <- tryCatch(list(value = convert_value(spec, unwrap_value(raw[[key]]))),
                          error = function(e) conditionMessage(e))
    if (is.character(converted)) {
      problems <- c(problems, sprintf("hyperparameter '%s': %s", key, converted))
    } else {
      values[key] <- list(converted$value)
    }
  }
  if (length(problems) > 0) stop(paste(problems, collapse = "; "), call. = FALSE)
  values
}

#' Write /opt/ml/output/failure, the reason on its first line, unless one exists.
#' @param reason one line; SageMaker shows its first 1024 characters
#' @param detail more lines (a traceback), written below it
#' @param job what failed, for the log line: "Training" or "Evaluation"
write_failure <- function(reason, detail = "", job = "Training") {
  reason <- gsub("\\s+", " ", trimws(reason))
  if (!nzchar(reason)) reason <- paste(tolower(job), "failed")
  message(job, " failed: ", reason)
  path <- opt_ml_path("output", "failure")
  if (file.exists(path)) return(invisible(path))
  if (nchar(reason) > failure_reason_limit) {
    reason <- paste0(substr(reason, 1, failure_reason_limit - 3), "...")
  }
  dir.create(dirname(path), showWarnings = FALSE, recursive = TRUE)
  writeLines(if (nzchar(detail)) c(reason, "", detail) else reason, path)
  invisible(path)
}

#' Whether SageMaker asked the job to stop.
#'
#' R cannot catch SIGTERM, so the `train` wrapper catches it (StopTrainingJob,
#' MaxRuntimeInSeconds, a spot reclaim) and creates the file BYOC_STOP_FLAG
#' names; training checks it between epochs.
stop_requested <- function() {
  flag <- Sys.getenv("BYOC_STOP_FLAG", "")
  nzchar(flag) && file.exists(flag)
}

#' Stop training at once for a stop request: train.R writes the reason and exits 143.
#' @param where what training was doing, for the reason
stop_training <- function(where) {
  stop(structure(class = c("training_stopped", "error", "condition"),
                 list(message = paste("Training stopped: SIGTERM received", where), call = NULL)))
}

#' Where to keep checkpoints: checkpointconfig.json's LocalPath (default
#' /opt/ml/checkpoints), or /opt/ml/checkpoints when it exists; NULL otherwise.
checkpoint_dir <- function() {
  default <- opt_ml_path("checkpoints")
  config <- read_config("checkpointconfig.json", list(.absent = TRUE))
  if (isTRUE(config$.absent)) return(if (dir.exists(default)) default else NULL)
  path <- config$LocalPath %||% default
  # Under byoc's process backend /opt/ml is elsewhere: move the container path with it.
  if (startsWith(path, "/opt/ml/")) path <- opt_ml_path(substring(path, nchar("/opt/ml/") + 1))
  dir.create(path, showWarnings = FALSE, recursive = TRUE)
  path
}

#' Save `object` with saveRDS through a temporary name, so that no reader (nor
#' checkpoint sync, which skips *.sagemaker-ignore) sees it half-written.
save_atomically <- function(object, path) {
  temp <- paste0(path, ".sagemaker-ignore")
  saveRDS(object, temp)
  if (!file.rename(temp, path)) stop(sprintf("cannot rename %s to %s", temp, path), call. = FALSE)
  invisible(path)
}

#' Unpack a model.tar.gz into a new directory: plain files and directories only,
#' nothing outside it (absolute or '..' paths and links are refused).
#' @param archive the .tar.gz file
#' @param scratch the directory to create and unpack into
#' @return scratch
unpack_archive <- function(archive, scratch) {
  members <- tryCatch(utils::untar(archive, list = TRUE, tar = "internal"),
                      error = function(e) stop(sprintf("%s is not a readable tar.gz archive: %s",
                                                       archive, conditionMessage(e)), call. = FALSE))
  if (any(startsWith(members, "/") | grepl("(^|/)\\.\\.(/|$)", members))) {
    stop(sprintf("%s: refusing an archive with absolute or '..' paths", archive), call. = FALSE)
  }
  dir.create(scratch)
  if (utils::untar(archive, exdir = scratch, tar = "internal") != 0) {
    stop(sprintf("cannot unpack %s", archive), call. = FALSE)
  }
  unpacked <- list.files(scratch, recursive = TRUE, all.files = TRUE, full.names = TRUE)
  if (any(nzchar(Sys.readlink(unpacked)))) {
    stop(sprintf("%s: refusing an archive with links: only plain files and directories",
                 archive), call. = FALSE)
  }
  scratch
}
