# Runtime: you should not need to edit this file.
#
# The HTTP API of one R server process, for plumber: /ping, /invocations and
# /execution-parameters. `serve` runs several such processes behind nginx (R
# answers one request at a time), and one more that nginx sends only /ping
# and /execution-parameters to, so that a slow invocation never delays a
# health check. The model is loaded once per process, when this file is
# plumbed; if it cannot be loaded the process still starts, and /ping answers
# 503 with `X-Model-Load-Status: failed` and the reason. Every error is one
# plain-text line: 415 for an unsupported Content-Type, 406 for an Accept no
# supported type meets, 400 for a body that cannot be read.

#' The serving settings `serve` passes on (see the table in the README).
serve_setting <- function(name, default) {
  value <- suppressWarnings(as.integer(Sys.getenv(name, "")))
  if (is.na(value)) default else value
}

#' What GET /execution-parameters answers for batch transform: one request per
#' worker at most, within SageMaker's MaxConcurrentTransforms x MaxPayloadInMB <= 100.
execution_parameters <- function() {
  payload_mb <- min(serve_setting("SERVE_MAX_PAYLOAD_MB", 6L), 100L)  # above: asynchronous only
  concurrency <- serve_setting("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", NA_integer_)
  if (is.na(concurrency)) concurrency <- serve_setting("SERVE_WORKERS", 1L)
  strategy <- toupper(gsub("_", "", Sys.getenv("SAGEMAKER_BATCH_STRATEGY", "")))
  list(MaxConcurrentTransforms = min(concurrency, max(1L, 100L %/% payload_mb)),
       BatchStrategy = if (strategy == "SINGLERECORD") "SINGLE_RECORD" else "MULTI_RECORD",
       MaxPayloadInMB = payload_mb)
}

#' Load the model; never stops. @return list(model, error)
load_served_model <- function() {
  model_dir <- opt_ml_path("model")
  loaded <- tryCatch(list(model = load_model(model_dir), error = NULL), error = function(e) {
    list(model = NULL, error = sprintf("cannot load the model from %s: %s", model_dir,
                                       gsub("\\s+", " ", conditionMessage(e))))
  })
  if (is.null(loaded$error)) loaded$width <- tryCatch(n_features(loaded$model), error = function(e) NULL)
  loaded
}

#' Whether every invocation worker listens yet. `serve` names their sockets in
#' SERVE_WORKER_SOCKETS (the /ping process waits for them); a worker's socket
#' appears once it has loaded the model.
workers_ready <- local({
  ready <- FALSE
  function() {
    if (!ready) {
      sockets <- strsplit(Sys.getenv("SERVE_WORKER_SOCKETS", ""), ":", fixed = TRUE)[[1]]
      ready <<- all(file.exists(sockets))
    }
    ready
  }
})

#' Answer with one plain-text line.
text_response <- function(res, status, message) {
  res$status <- status
  res$setHeader("Content-Type", "text/plain")
  res$body <- paste0(substr(gsub("\\s+", " ", message), 1, 1000), "\n")
  res
}

served <- load_served_model()
if (is.null(served$error)) {
  message(sprintf("serve: model loaded from %s (process %d)", opt_ml_path("model"), Sys.getpid()))
} else {
  message(sprintf("serve: %s; /ping answers 503", served$error))
}

#* Health check: 200 once the model is loaded.
#* @get /ping
#* @head /ping
#* @serializer text
function(res) {
  if (!is.null(served$error)) {
    res$setHeader("X-Model-Load-Status", "failed")
    return(text_response(res, 503, served$error))
  }
  if (!workers_ready()) {
    res$setHeader("X-Model-Load-Status", "loading")
    return(text_response(res, 503, "the model is loading"))
  }
  res$status <- 200L
  res$body <- ""
  res
}

#* Batch transform's settings.
#* @get /execution-parameters
function(res) {
  res$setHeader("Content-Type", "application/json")
  res$body <- as.character(jsonlite::toJSON(execution_parameters(), auto_unbox = TRUE))
  res
}

#* Predictions for the rows of the body.
#* @post /invocations
#* @parser raw_body
function(req, res) {
  if (!is.null(served$error)) {
    res$setHeader("X-Model-Load-Status", "failed")
    return(text_response(res, 503, served$error))
  }
  tryCatch({
    kind <- request_type(req$HTTP_CONTENT_TYPE)
    answer <- response_type(req$HTTP_ACCEPT, kind)
    rows <- decode_body(req$bodyRaw %||% raw(0), kind, served$width)
    predictions <- tryCatch(predict_rows(served$model, rows), error = function(e) {
      message("serve: prediction failed: ", conditionMessage(e))
      http_error(500, paste("prediction failed:", conditionMessage(e)))
    })
    res$status <- 200L
    res$setHeader("Content-Type", answer)
    res$body <- encode_predictions(predictions, answer)
    res
  }, http_error = function(e) text_response(res, e$status, conditionMessage(e)))
}
